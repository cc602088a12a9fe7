"""``python -m harness``: the harness's command line (see ``harness.cli``)."""

from harness.cli.app import main

main()
