"""The home page service: compose pages with exact propensities, log durably, serve a web page.

``create_app(settings)`` builds the FastAPI app; ``reelpick serve`` runs it with uvicorn. See
``docs/serve.md``.
"""

from reelpick.serve.app import create_app
from reelpick.serve.bundle import ModelBundle, load_bundle
from reelpick.serve.provider import HomepageProvider, Page, PageContext
from reelpick.serve.settings import Settings
from reelpick.serve.store import EventStore

__all__ = [
    "EventStore",
    "HomepageProvider",
    "ModelBundle",
    "Page",
    "PageContext",
    "Settings",
    "create_app",
    "load_bundle",
]
