"""``python -m harness.rtdb [--host H] [--port P] [--snapshot FILE] ...``: ``python -m harness rtdb``.

How the stack, the fixtures (``harness.rtdb.process``) and the rtdb image start the emulator: the
same typer command, alone, so a spawned emulator does not load the whole CLI.
"""

import typer

from harness.cli.rtdb import rtdb

typer.run(rtdb)
