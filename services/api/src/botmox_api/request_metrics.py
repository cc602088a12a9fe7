"""What the API counts of its HTTP requests and of the store failures it answers: the
``botmox_api_requests_total``, ``botmox_api_request_duration_seconds`` and
``botmox_api_store_errors_total`` series of ``metrics.ApiMetrics``.

The request gate calls ``RequestMetrics.observe`` once per HTTP request, where it writes the access
line, with the status it sent and the time it took. WebSocket tunnels are not requests: the gate
passes them through uncounted (their figures are the agents' own metrics).

Labels stay bounded whatever clients send: ``route`` is the route's template
(``/api/v1/agents/{agent_id}/commands``), never the raw path, and any path no route serves is
``unmatched``; a method outside HTTP's usual ones is ``OTHER``; ``backend`` is ``DATA_BACKEND``. A
request answered before routing (a 401, 403 or 429 of the gate, a CORS preflight) is labelled with
the template its path would have reached.

Cost, on the hot path: the template of a routed request is one dict lookup (the route object the
router left in the scope, or the path of a route without parameters, such as the direct
storage-policy route, which the router never sees); the label children of a (route, method,
status) are resolved once and kept, so a request costs an increment and an observation, no label
lookup. Only a request that never reached a route with parameters is matched against the
templates' regular expressions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, compile_path
from starlette.types import Scope

from botmox_api.metrics import ApiMetrics

UNMATCHED: Final = "unmatched"
OTHER_METHOD: Final = "OTHER"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STORE_QUERY_FAILED: Final = "query_failed"
STORE_NOT_CONFIGURED: Final = "not_configured"


@dataclass(frozen=True, slots=True)
class StoreFailure:
    """A store failure answered to a client: ``store`` is the store's subject (``storage_policy``,
    ``settings``, ``agents``), ``operation`` ``read`` or ``write``, ``kind`` ``query_failed`` (502)
    or ``not_configured`` (503)."""

    store: str
    operation: str
    kind: str


@dataclass(frozen=True, slots=True)
class RoutedPrefix:
    """Routes as the app includes them: ``prefix`` (the include's) plus each route's own path."""

    prefix: str
    routes: Iterable[BaseRoute]


class RouteTemplates:
    """The template a request's path belongs to, from the routes the app serves."""

    def __init__(self, included: Iterable[RoutedPrefix], *, direct_paths: Iterable[str] = ()) -> None:
        """``direct_paths``: paths answered ahead of the router (the direct storage-policy route),
        their own templates."""
        self._by_route: dict[int, str] = {}
        self._static: dict[str, str] = {path: path for path in direct_paths}
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for include in included:
            for route in include.routes:
                own = getattr(route, "path", None)
                if not isinstance(own, str):
                    continue
                # As OpenAPI writes it: ``{settings_path}``, not ``{settings_path:settings_path}``.
                regex, template, convertors = compile_path(include.prefix + own)
                # The router leaves the route object it chose in the scope (``scope["route"]``),
                # under its own path (without the include's prefix): keyed by identity, as
                # Starlette's routes compare by value and are not hashable.
                self._by_route[id(route)] = template
                if convertors:
                    self._patterns.append((regex, template))
                else:
                    self._static.setdefault(template, template)

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            template = self._by_route.get(id(route))
            if template is not None:
                return template
        path: str = scope["path"]
        template = self._static.get(path)
        if template is not None:
            return template
        for regex, candidate in self._patterns:
            if regex.match(path):
                return candidate
        return UNMATCHED


_Children = tuple[Counter, Histogram]


class RequestMetrics:
    """One per app: the request and store-error series of its ``ApiMetrics``, labelled with
    ``backend`` (``DATA_BACKEND``)."""

    def __init__(self, metrics: ApiMetrics, *, backend: str, templates: RouteTemplates) -> None:
        self._metrics = metrics
        self._backend = backend
        self._templates = templates
        # Bounded: templates x methods (with OTHER) x the statuses the API answers with.
        self._children: dict[tuple[str, str, int], _Children] = {}

    def observe(self, scope: Scope, status: int, duration_s: float) -> None:
        method: str = scope["method"]
        if method not in _METHODS:
            method = OTHER_METHOD
        key = (self._templates.of(scope), method, status)
        children = self._children.get(key)
        if children is None:
            children = self._resolve(*key)
        children[0].inc()
        children[1].observe(duration_s)

    def _resolve(self, route: str, method: str, status: int) -> _Children:
        children = (
            self._metrics.requests.labels(method, route, str(status), self._backend),
            self._metrics.request_duration.labels(method, route, self._backend),
        )
        self._children[(route, method, status)] = children
        return children

    def store_failed(self, failure: StoreFailure) -> None:
        self._metrics.store_errors.labels(failure.store, failure.operation, failure.kind).inc()
