"""The `magenta-release` console script. The command line is the `[cli]` extra; in a base
install (a team's code environment) the script says so in one line instead of a traceback."""

from __future__ import annotations

import sys

from magenta_release.core.extras import message, missing_from


def main() -> None:
    """Console-script entry point: `magenta_release.cli.main`, or exit 2 naming the extra."""
    try:
        from magenta_release.cli import main as cli_main
    except ModuleNotFoundError as exc:
        module = missing_from(exc)
        if module is None:
            raise
        print(f"error: {message(module, 'the magenta-release command')}", file=sys.stderr)
        sys.exit(2)
    cli_main()
