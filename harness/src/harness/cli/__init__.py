"""``python -m harness``: the harness's one command line (typer), one module per command group.

``app`` assembles the commands of ``stack`` (up, down, status, logs, flip, compose, token),
``postgres`` (pgtap, bench) and ``bootstrap`` (env, bootstrap-check). The modules only read arguments
and print; the work is done where it lives (``harness.stack``, ``harness.postgres``,
``harness.bootstrap_env``, ``harness.bootstrap_check``).

Two processes the stack spawns keep entry points of their own, and are no commands here:
``python -m harness.rtdb`` (the emulator; its image holds the ``harness.rtdb`` package alone, so it
parses its options with the standard library) and ``python -m harness.stack.static_server`` (the
native frontend; it reads the frontend image's variables, not arguments).
"""
