"""The application: its URLs and the factory, ``create_app(settings)``, that wires configuration,
stores and routes.

Everything a request needs is built here once (authenticator, rate limiter, CORS policy, logger,
stores, shadow reads) and shared; the lifespan starts the shadow reads' workers and closes what was
opened. Building does no network I/O, so the API starts with every backend down and reports that
through ``/health/ready``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, TextIO

from fastapi import FastAPI
from structlog.typing import FilteringBoundLogger

from botmox_api import __version__, settings_path
from botmox_api.auth import Authenticator, FirebaseTokenVerifier
from botmox_api.config import ApiSettings
from botmox_api.errors import install_exception_handlers
from botmox_api.gate import ClientAddresses, CorsPolicy, FixedWindowRateLimiter, RequestGate
from botmox_api.logs import AccessLog, build_logger
from botmox_api.metrics import ApiMetrics
from botmox_api.openapi import build_openapi
from botmox_api.readiness import ReadinessCache
from botmox_api.request_metrics import RequestMetrics, RoutedPrefix, RouteTemplates
from botmox_api.routes import agents as agents_routes
from botmox_api.routes import auth, health
from botmox_api.routes import metrics as metrics_routes
from botmox_api.routes import settings as settings_routes
from botmox_api.routes.storage_policy_direct import StoragePolicyRoute
from botmox_api.shadow_reads import ShadowReads
from botmox_api.stores.factory import stores_for
from botmox_api.stores.protocols import StoreSet
from botmox_api.tunnel import WorkerTunnel
from botmox_api.tunnel import router as tunnel_router
from botmox_protocol import SessionTerms

# The URLs. The gate, the exception handlers and the OpenAPI document get them from create_app: this
# module imports them, so their importing it back would be a cycle.
API_PREFIX: Final = "/api/v1"
HEALTH_PATH: Final = f"{API_PREFIX}/health"
# Exactly these: any other path under /api/v1, /health/nope included, is authenticated first.
HEALTH_PATHS: Final = frozenset({HEALTH_PATH, f"{HEALTH_PATH}/live", f"{HEALTH_PATH}/ready"})
OPENAPI_PATH: Final = f"{API_PREFIX}/openapi.json"
SETTINGS_PATH: Final = f"{API_PREFIX}{settings_routes.TREE_ROUTE}"
STORAGE_POLICY_PATH: Final = f"{API_PREFIX}{settings_routes.STORAGE_POLICY_ROUTE}"
AGENT_REGISTER_PATH: Final = f"{API_PREFIX}{agents_routes.REGISTER_ROUTE}"
PUBLIC_PATHS: Final = frozenset({OPENAPI_PATH, AGENT_REGISTER_PATH})
"""No token: the document, and an agent's registration (its pairing code is the credential). The
agents' WebSocket (``tunnel.endpoint``) needs no user token either: the gate gates HTTP only, and the
tunnel authenticates the agent's own credential."""

DESCRIPTION = (
    "Bot-Mox control-plane API v1: settings, storage policy, auth and health. Every response is an "
    'envelope: `{"success": true, "data": ...}` or '
    '`{"success": false, "error": {"code", "message", "details"?}}`.'
)


def _shadow_reads(
    settings: ApiSettings, stores: StoreSet, logger: FilteringBoundLogger
) -> ShadowReads | None:
    if not settings.storage_policy_shadow:
        return None
    if stores.shadow is None:
        # The factory builds it (or refuses the configuration); a hand-made store set must bring one.
        raise ValueError("STORAGE_POLICY_SHADOW=on needs the store set's shadow store")
    return ShadowReads(
        stores.shadow,
        primary=settings.data_backend,
        logger=logger,
        queue_size=settings.storage_policy_shadow_queue,
        workers=settings.storage_policy_shadow_workers,
        rate=settings.storage_policy_shadow_rate,
    )


def _tunnel(
    settings: ApiSettings, stores: StoreSet, metrics: ApiMetrics, logger: FilteringBoundLogger
) -> WorkerTunnel | None:
    if stores.agent_link is None:
        return None
    terms = SessionTerms(
        heartbeat_interval_s=settings.agent_heartbeat_interval_s,
        heartbeat_timeout_s=settings.agent_heartbeat_timeout_s,
    )
    return WorkerTunnel(
        stores.agent_link,
        terms=terms,
        sweep_interval_s=settings.agent_sweep_interval_s,
        metrics=metrics,
        logger=logger,
    )


def create_app(
    settings: ApiSettings, *, stores: StoreSet | None = None, log_stream: TextIO | None = None
) -> FastAPI:
    """``stores`` defaults to the real ones for ``settings``; tests may pass their own."""
    logger = build_logger(level=settings.log_level, fmt=settings.log_format, stream=log_stream)
    store_set = stores if stores is not None else stores_for(settings)
    readiness = ReadinessCache(store_set, ttl_s=settings.health_cache_ttl_s)
    firebase = FirebaseTokenVerifier(settings.firebase_project_id) if settings.firebase_project_id else None
    shadow = _shadow_reads(settings, store_set, logger)
    metrics = ApiMetrics()
    tunnel = _tunnel(settings, store_set, metrics, logger)
    authenticator = Authenticator(settings, firebase)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.data_backend == "supabase" and not store_set.supabase_configured:
            logger.warning(
                "supabase_not_configured",
                detail="DATA_BACKEND=supabase without Supabase settings: storage_policy "
                "answers SUPABASE_CONFIG_ERROR until configured",
            )
        logger.info("started", data_backend=settings.data_backend, app_env=settings.app_env)
        if shadow is not None:
            shadow.start()
        if tunnel is not None:
            tunnel.start()
        try:
            yield
        finally:
            if tunnel is not None:
                await tunnel.aclose()  # before the stores its calls use
            if shadow is not None:
                await shadow.aclose()  # before the stores its reads use
            await readiness.aclose()
            await store_set.aclose()
            if firebase is not None:
                firebase.close()

    app = FastAPI(
        title="Bot-Mox API v1",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_PATH,
        docs_url=None,  # HTML pages would break "every response is an envelope"
        redoc_url=None,
        redirect_slashes=False,  # a redirect is not an envelope either
        lifespan=lifespan,
        # The API exports no OpenTelemetry data; left on, FastAPI looks up the global providers on
        # every request to find that out.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.stores = store_set
    app.state.readiness = readiness
    app.state.shadow_reads = shadow
    app.state.logger = logger
    app.state.metrics = metrics
    app.state.tunnel = tunnel
    settings_path.register_convertor()  # before the settings routes that use it are built
    api_routers = (health.router, auth.router, settings_routes.build_router(), agents_routes.router)
    for router in api_routers:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(tunnel_router, prefix=API_PREFIX)
    metrics_router = metrics_routes.build_router(authenticator, metrics)
    app.include_router(metrics_router)
    request_metrics = RequestMetrics(
        metrics,
        backend=settings.data_backend,
        templates=RouteTemplates(
            [
                *(RoutedPrefix(API_PREFIX, router.routes) for router in api_routers),
                RoutedPrefix("", metrics_router.routes),
            ],
            direct_paths=(STORAGE_POLICY_PATH,),
        ),
    )
    app.state.request_metrics = request_metrics
    install_exception_handlers(app, api_prefix=API_PREFIX, allowed_methods=settings_routes.allowed_methods)
    # Added first, so it runs inside the gate: authenticated, rate limited and logged like any route.
    app.add_middleware(
        StoragePolicyRoute,
        path=STORAGE_POLICY_PATH,
        store=store_set.storage_policy,
        shadow=shadow,
        max_body_bytes=settings.api_max_body_bytes,
        logger=logger,
        request_metrics=request_metrics,
    )
    app.add_middleware(
        RequestGate,
        authenticator=authenticator,
        rate_limiter=FixedWindowRateLimiter(settings.api_rate_limit_max, settings.api_rate_limit_window_s),
        cors=CorsPolicy(settings.cors_origins),
        client_addresses=ClientAddresses(settings.forwarded_allow_ips),
        logger=logger,
        access_log=AccessLog(logger, level=settings.log_level, fmt=settings.log_format, stream=log_stream),
        request_metrics=request_metrics,
        api_prefix=API_PREFIX,
        health_paths=HEALTH_PATHS,
        public_paths=PUBLIC_PATHS,
        settings_path=SETTINGS_PATH,
    )
    app.openapi = lambda: build_openapi(app, unauthenticated_paths=HEALTH_PATHS | {AGENT_REGISTER_PATH})  # type: ignore[method-assign]
    return app
