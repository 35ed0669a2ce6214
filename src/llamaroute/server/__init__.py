"""``llamaroute serve``: an OpenAI-compatible HTTP gateway over :class:`~llamaroute.AsyncClient`,
with virtual keys, per-key budgets and rates, spend by key, user and tag, Prometheus metrics and
a dashboard. Needs the ``server`` extra (``pip install 'llamaroute[server]'``: Starlette, uvicorn,
prometheus_client); ``import llamaroute`` never imports it.

    from llamaroute.server import create_app, load_config
    app = create_app(load_config("gateway.toml"))    # any ASGI server can run it
"""

from ._app import create_app
from ._books import worst_case
from ._config import MASTER_KEY_ENV, GatewayConfig, load_config
from ._gateway import Gateway
from ._store import DB_ENV, KeyRecord, Store, default_db_path

__all__ = [
    "DB_ENV",
    "MASTER_KEY_ENV",
    "Gateway",
    "GatewayConfig",
    "KeyRecord",
    "Store",
    "app_from_env",
    "create_app",
    "default_db_path",
    "load_config",
    "worst_case",
]

#: Set by ``llamaroute serve`` for its worker processes: the config file and the database.
CONFIG_ENV = "LLAMAROUTE_GATEWAY_CONFIG"


def app_from_env() -> object:
    """The app as ``llamaroute serve`` configures it (uvicorn's factory, one per worker)."""
    import os

    config = load_config(os.environ.get(CONFIG_ENV) or None)
    return create_app(config, db=os.environ.get(DB_ENV) or None)
