"""What "ready" means for the SQL transport: the migrations' table and functions exist, and the
role the API logs in as may use them. Checked in one statement over a pooled connection.

``botmox.request_subject`` stands for the second migration (caller identity): without it the
functions still want ``p_updated_by``, which the API no longer sends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from botmox_api.stores.protocols import Readiness

CHECK_SCHEMA: Final = """
select name, object is not null as present,
       coalesce(case when kind = 'table' then has_table_privilege(object, 'select')
                     else has_function_privilege(object, 'execute') end, false) as allowed
from (values
  (1, 'public.storage_policies', 'table', to_regclass('public.storage_policies')::oid),
  (2, 'public.storage_policy_read', 'function',
      to_regprocedure('public.storage_policy_read(text)')::oid),
  (3, 'public.storage_policy_replace', 'function',
      to_regprocedure('public.storage_policy_replace(text,text,text,boolean,bigint[],boolean)')::oid),
  (4, 'public.storage_policy_merge', 'function',
      to_regprocedure('public.storage_policy_merge(text,text,text,boolean,bigint[],boolean)')::oid),
  (5, 'botmox.request_subject', 'function', to_regprocedure('botmox.request_subject()')::oid)
) as objects(position, name, kind, object)
order by position
"""


def readiness_from_rows(rows: Sequence[dict[str, object]]) -> Readiness:
    missing = [str(row["name"]) for row in rows if row["present"] is not True]
    if missing:
        return Readiness(False, "Migration not applied: missing " + ", ".join(missing))
    denied = [str(row["name"]) for row in rows if row["allowed"] is not True]
    if denied:
        return Readiness(False, "The API's database role may not use " + ", ".join(denied))
    return Readiness(True)
