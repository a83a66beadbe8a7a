"""Service settings, read from the environment (``REELPICK_*``) or given in code.

Every field has an environment variable named ``REELPICK_`` + the field name in capitals, e.g.
``REELPICK_API_KEY``, ``REELPICK_DATA_DIR``. Values are validated once, at construction, and an
invalid value raises :class:`pydantic.ValidationError` naming the field.

>>> s = Settings(api_key="k", data_dir="/tmp/rp")
>>> s.db_path.name, s.log_backend
('events.sqlite3', 'sqlite')
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of one service instance (see ``docs/serve.md`` for each variable)."""

    model_config = SettingsConfigDict(env_prefix="REELPICK_", extra="forbid", frozen=True)

    #: Model directory a page policy is published into by ``reelpick promote`` (``manifest.json``
    #: inside); the page shape, exploration and artwork choice are the policy's own. ``None``:
    #: ``reelpick serve`` builds a demo policy first (``demo_preset``, ``demo_epsilon``).
    model_dir: Path | None = None
    #: Folder of the event log (``events.sqlite3``), created when missing.
    data_dir: Path = Path("reelpick-data")
    #: Key required in ``X-API-Key`` by ``POST /v1/events``. ``None`` disables writes (403).
    api_key: SecretStr | None = None
    #: Key required by ``/v1/admin/*``; defaults to ``api_key``.
    admin_key: SecretStr | None = None

    #: Folder of artwork images named ``<artwork_id>.{png,jpg,webp,svg}``; otherwise SVGs are drawn.
    artwork_dir: Path | None = None
    #: Seed of the page randomness (``None``: fresh entropy per process).
    seed: int | None = None
    #: World preset of the demo policy ``reelpick serve`` builds when ``model_dir`` is ``None``.
    demo_preset: str = "small"
    #: Share of visits the demo policy explores (uniform pages); a published policy has its own.
    demo_epsilon: float = Field(default=0.1, ge=0.0, lt=1.0)
    #: Check ``model_dir``'s manifest every this many seconds and load a newly published version
    #: (0: only ``POST /v1/admin/reload`` swaps). With several worker processes a reload request
    #: reaches one of them; the watch brings every worker to the published version.
    watch_seconds: float = Field(default=0.0, ge=0.0, le=86_400.0)

    #: Composed pages the served policy remembers (one per member, context and hour: repeat
    #: visits and pages of ``POST /v1/admin/precompute``), and whole pages' image
    #: distributions as many (about 12.8 kB each for 200 slots of up to 8 images).
    page_cache: int = Field(default=10_000, ge=1, le=10_000_000)
    #: SQLite file of pages composed ahead, shared by every worker and by ``reelpick
    #: precompute --store`` (``reelpick.page.store``): a page not remembered in the process is
    #: looked up there before it is composed. ``None``: ``pages.sqlite3`` in ``data_dir``.
    page_store: Path | None = None

    #: Dynamic batching of ``GET /v1/homepage``: a request waits up to this many milliseconds
    #: for others to be composed with it in one pass (0: only those already scheduled). Under
    #: load, a batch of many pages costs a fraction of the CPU a page that one alone does.
    batch_wait_ms: float = Field(default=1.0, ge=0.0, le=100.0)
    #: A batch this large is composed at once, without waiting further.
    batch_max: int = Field(default=32, ge=1, le=1_024)

    # limits
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=64 * 1_048_576)
    max_batch_events: int = Field(default=1_000, ge=1, le=100_000)

    # event log
    group_commit: bool = True
    commit_max_jobs: int = Field(default=1_024, ge=1, le=100_000)
    commit_delay_ms: float = Field(default=0.0, ge=0.0, le=100.0)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: ``postgresql://user[:password]@host[:port]/db``: log to PostgreSQL instead of the SQLite
    #: file (``reelpick.serve.pgstore``; shared by every worker and replica). ``None``: SQLite.
    event_log: SecretStr | None = None

    @field_validator("event_log", mode="before")
    @classmethod
    def _postgres_url(cls, v: object) -> object:
        text = v.get_secret_value() if isinstance(v, SecretStr) else v
        if text is None or text == "":
            return None
        if not isinstance(text, str) or not text.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (unset: the SQLite log in DATA_DIR)")
        return v

    @property
    def log_backend(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.event_log is None else "postgresql"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "events.sqlite3"

    @property
    def page_store_path(self) -> Path:
        return self.page_store if self.page_store is not None else self.data_dir / "pages.sqlite3"

    def admin_secret(self) -> SecretStr | None:
        return self.admin_key if self.admin_key is not None else self.api_key
