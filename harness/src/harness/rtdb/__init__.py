"""A Firebase Realtime Database emulator speaking the documented REST protocol.

The official Firebase Database Emulator cannot be installed on these machines, so the harness
carries this one: enough of the REST API (reads, writes, ETags, push ids, server values,
streaming) that firebase-admin cannot tell it from the real thing. See
``docs/contracts/rtdb-emulator.md`` for what it implements and what it leaves out.
"""
