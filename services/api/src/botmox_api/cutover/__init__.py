"""The storage-policy cutover tool (``python -m botmox_api.cutover``; ``docs/contracts/cutover-cli.md``).

Modules: ``__main__`` (command line, configuration, signals, exit codes), ``backends`` (the stores
from the API's configuration), ``survey`` (tenants, batched reads of both sides, what exists where),
``decisions`` (what a backfill does with a tenant), ``backfill`` (the copy engine), ``legacy`` (the
pre-tenant node), ``checkpoint`` (resuming), ``plan``, ``verify``, ``report`` (stdout: text and
JSON), ``progress`` (stderr). Reads and writes only through ``StoragePolicyBackfillStore`` and
``LegacyStoragePolicySource``; compares only with ``model.policy_differences``.
"""
