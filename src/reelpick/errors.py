"""Exceptions shared by every package (the bottom layer: this module imports nothing).

:class:`NotFittedError` is the one error for "used before ``fit``", whatever the estimator:
recommenders, OPE reward and propensity models, learned policies, IV and uplift estimators.
"""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (or before loading a fitted state).

    Subclasses both :class:`ValueError` and :class:`AttributeError`, as scikit-learn's
    ``sklearn.exceptions.NotFittedError`` does: ``hasattr(model, "params_")`` is ``False``
    before ``fit`` and ``except ValueError`` handlers still catch it.

    >>> from reelpick.models import MostPopular
    >>> try:
    ...     MostPopular().score(["m1"])
    ... except NotFittedError as exc:
    ...     print(exc)
    MostPopular is not fitted: call fit(interactions) first ...
    """


def check_fitted(estimator: object, attribute: str, how: str = "fit()") -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has ``attribute`` (a learned,
    ``_``-suffixed attribute that ``fit`` sets). ``how`` names what to call first."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"{type(estimator).__name__} is not fitted: call {how} first")
