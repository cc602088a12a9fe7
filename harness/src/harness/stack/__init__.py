"""The local stack: one description (``description``), the native runtime, the state file and the CLI."""
