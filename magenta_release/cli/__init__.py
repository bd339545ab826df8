"""The `magenta-release` command line: a thin Typer layer over the use cases.

Commands only collect options and call one use case; `ReleaseError` is caught at the edge
(`cli.base.run_action`) and becomes `error: ...` on stderr plus its exit code. MLflow is
imported lazily (never at import time) so `--help` stays fast."""

from __future__ import annotations

import sys

import typer

# Importing the command modules registers their commands on the one Typer app.
from magenta_release.cli import demo, policies, releases, setup, ui
from magenta_release.cli.base import app, quiet_start
from magenta_release.core.telemetry import disable_telemetry

__all__ = ["app", "demo", "main", "policies", "releases", "run", "setup", "ui"]


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code. Usage errors become one `error:` line (exit 2)
    instead of click's multi-line box."""
    # Typer vendors click; its UsageError is the base of every argument/option error.
    from typer._click.exceptions import UsageError

    disable_telemetry()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="magenta-release", standalone_mode=False)
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "magenta-release"
        from magenta_release.cli.render import safe

        message = safe(exc.format_message()).strip().rstrip(".")
        typer.echo(f"error: {message}; see `{safe(where)} --help`", err=True)
        return 2
    except typer.Abort:
        typer.echo("error: aborted; nothing was changed", err=True)
        return 130
    return code if isinstance(code, int) else 0


def main() -> None:
    """Console-script entry point."""
    quiet_start()
    sys.exit(run())


if __name__ == "__main__":
    main()
