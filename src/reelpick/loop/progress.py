"""Progress reporting without a UI dependency: the CLI plugs in rich progress bars.

>>> with NullProgress().task("training", total=3) as t:
...     t.advance()
"""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...

    def __enter__(self) -> Task: ...

    def __exit__(self, *exc: object) -> None: ...


class Progress(Protocol):
    """``task(description, total)`` returns a context manager with ``advance(n)``;
    ``log(message)`` prints one line."""

    def task(self, description: str, total: int) -> Task: ...

    def log(self, message: str) -> None: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> _NullTask:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class NullProgress:
    """Reports nothing."""

    def task(self, description: str, total: int) -> _NullTask:
        return _NullTask()

    def log(self, message: str) -> None:
        pass
