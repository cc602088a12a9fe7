"""``python -m harness``: the harness's one command line (typer), one module per command group.

``app`` assembles the commands of ``stack`` (up, down, status, logs, flip, compose, token),
``postgres`` (pgtap, bench), ``bootstrap`` (env, bootstrap-check) and ``rtdb`` (the emulator). The
modules only read arguments and print; the work is done where it lives (``harness.stack``,
``harness.postgres``, ``harness.bootstrap_env``, ``harness.bootstrap_check``, ``harness.rtdb``).
This package imports nothing itself, so ``python -m harness.rtdb`` loads the emulator's command alone.
The native stack's frontend, ``python -m harness.stack.static_server``, is no command: it reads the
frontend image's variables, not arguments, so both runtimes configure it alike.
"""
