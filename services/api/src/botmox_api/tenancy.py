"""The tenant of a user token (``docs/contracts/api-v1.md``, "Tenancy").

``app_metadata.tenant_id`` wins over a top-level ``tenant_id``; ``null`` and ``""`` count as absent; a
present value of any other type is invalid. The id is lower-cased, then matched against
``TENANT_ID_PATTERN``. A user token never falls back to ``DEFAULT_TENANT_ID``.
"""

from __future__ import annotations

from collections.abc import Mapping

from botmox_api.errors import Forbidden
from botmox_api.model import TENANT_ID_PATTERN


def _present(value: object) -> bool:
    return value is not None and value != ""


def tenant_of_claims(claims: Mapping[str, object]) -> str:
    """The caller's tenant id; raises ``Forbidden`` ("Token has no tenant" / "Invalid tenant id")."""
    app_metadata = claims.get("app_metadata")
    candidate: object = None
    if isinstance(app_metadata, Mapping) and _present(app_metadata.get("tenant_id")):
        candidate = app_metadata.get("tenant_id")
    elif _present(claims.get("tenant_id")):
        candidate = claims.get("tenant_id")
    if candidate is None:
        raise Forbidden("Token has no tenant")
    if not isinstance(candidate, str):
        raise Forbidden("Invalid tenant id")
    tenant_id = candidate.lower()
    if not TENANT_ID_PATTERN.match(tenant_id):
        raise Forbidden("Invalid tenant id")
    return tenant_id
