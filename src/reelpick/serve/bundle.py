"""What the service holds and swaps on reload: the catalogue and the page provider, together.

:func:`load_bundle` reads ``settings.model_dir`` (its ``manifest.json`` names the current
version): a saved :class:`~reelpick.page.PagePolicy` (``reelpick promote``), served by
:class:`~reelpick.serve.policy_provider.PagePolicyProvider` (the one way pages are composed).
The service never simulates: ``reelpick serve`` without a model directory builds a demo policy
before it starts
(:func:`reelpick.cli.serve.demo_policy_dir`). Tests pass their own loader to
:func:`reelpick.serve.create_app`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from reelpick.serve.catalog import Catalog
from reelpick.serve.model_dir import MANIFEST, POLICY_KIND, read_manifest
from reelpick.serve.provider import HomepageProvider
from reelpick.serve.render import PageRenderer
from reelpick.serve.settings import Settings


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """An immutable catalogue + provider pair; replaced as a whole on reload."""

    catalog: Catalog
    provider: HomepageProvider
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.provider.version

    @cached_property
    def renderer(self) -> PageRenderer:
        """JSON fragments of the catalogue for the home page answer (built once per bundle;
        :func:`prepared` builds it in the loading thread, not on a request)."""
        return PageRenderer.for_catalog(self.catalog, policy=self.provider.name,
                                        model_version=self.provider.version)


def prepared(bundle: ModelBundle) -> ModelBundle:
    """``bundle`` with its per-bundle caches built (call it off the event loop)."""
    bundle.renderer  # noqa: B018 - builds the cached property
    return bundle


#: A function that builds the bundle from settings (called at start-up and on every reload).
BundleLoader = Callable[[Settings], ModelBundle]


def load_bundle(settings: Settings) -> ModelBundle:
    """The default loader: the current version of ``settings.model_dir``, a published page
    policy (:class:`ValueError` naming the manifest for anything else)."""
    model_dir = settings.model_dir
    if model_dir is None:
        raise ValueError("no model directory: set REELPICK_MODEL_DIR (or --model-dir) to the "
                         "output of `reelpick promote`; `reelpick serve` without one builds a "
                         "demo policy first")
    manifest = read_manifest(model_dir)
    if manifest.get("kind") != POLICY_KIND:
        raise ValueError(f"{Path(model_dir) / MANIFEST}: kind {manifest.get('kind')!r} is not a "
                         f"published page policy ({POLICY_KIND!r}); the ALS model directory "
                         "(`reelpick train --policy als`) is no longer served: train with "
                         "`reelpick train --policy page` and publish with `reelpick promote`")
    from reelpick.page.store import PageStore
    from reelpick.serve.policy_provider import PagePolicyProvider  # LightGBM: load on use

    pp = PagePolicyProvider.from_dir(Path(model_dir) / manifest["path"],
                                     version=manifest["version"])
    pp.cache(settings.page_cache)
    pp.use_store(PageStore(settings.page_store_path))
    return ModelBundle(pp.catalog, pp, manifest)
