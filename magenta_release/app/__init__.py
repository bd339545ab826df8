"""Use cases, one module per command, on a per-command context."""
