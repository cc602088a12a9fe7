"""``python -m harness``: the stack's command line (see ``harness.cli``)."""

from harness.cli import main

main()
