"""routekit's multi-user HTTP service (FastAPI) and its web page.

``create_app(store, settings)`` builds the ASGI app; ``routekit serve`` runs it with uvicorn.
"""

from agent.http.app import create_app
from agent.http.settings import ADMIN_TOKEN_ENV, ServiceSettings, resolve_admin_token

__all__ = ["ADMIN_TOKEN_ENV", "ServiceSettings", "create_app", "resolve_admin_token"]
