"""What RTDB can hold, in one place: the path rules, the body checks and the OpenAPI document all
import these, so the API refuses (400) exactly what RTDB would refuse or silently alter.

Generic settings live in RTDB in both modes, so these limits hold for ``DATA_BACKEND=supabase`` too.
"""

from __future__ import annotations

from typing import Final

# RTDB holds at most 32 levels below its root, and a tenant's settings start 3 levels down
# (tenants/{tenant_id}/settings): a settings path plus the depth of its body gets the rest.
RTDB_MAX_LEVELS: Final = 32
SETTINGS_ROOT_LEVELS: Final = 3
MAX_LEVELS_BELOW_SETTINGS: Final = RTDB_MAX_LEVELS - SETTINGS_ROOT_LEVELS

MAX_KEY_BYTES: Final = 768

# RTDB keeps every number as a double, exact for integers up to 2^53 only: a larger integer would be
# stored rounded, so it is refused instead.
MAX_SAFE_INTEGER: Final = 2**53
