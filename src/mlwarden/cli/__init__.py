"""The command line: the only code that prints, reads the environment or exits.

`main(argv) -> int` returns the exit status so tests can call it in-process:
0 clean, 1 findings at or above --fail-on (or a verification refused),
2 bad usage, or input that could not be checked.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from mlwarden import __version__
from mlwarden.cli._common import EXIT_USAGE, die
from mlwarden.errors import MlwardenError, UsageError

# Commands are imported when invoked: `mlwarden scan` does not pay for the gateway,
# the data screens or the package audit at start-up (per-file scan time matters in CI).
_COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("mlwarden.cli.scan", "scan_command"),
    "sign": ("mlwarden.cli.sign", "sign_command"),
    "verify": ("mlwarden.cli.sign", "verify_command"),
    "data": ("mlwarden.cli.sign", "data_group"),
    "deps": ("mlwarden.cli.packages", "deps_command"),
    "bom": ("mlwarden.cli.packages", "bom_command"),
    "serve": ("mlwarden.cli.serve", "serve_command"),
    "audit": ("mlwarden.cli.audit", "audit_group"),
    "demo": ("mlwarden.cli.demo", "demo_command"),
    "update": ("mlwarden.cli.update", "update_group"),
    "detect": ("mlwarden.cli.detect", "detect_group"),
    "admin": ("mlwarden.cli.admin", "admin_group"),
    "assess": ("mlwarden.cli.assess", "assess_command"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        import importlib

        command = getattr(importlib.import_module(target[0]), target[1])
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlwarden")
def cli() -> None:
    """mlwarden: Zero Trust for machine-learning systems."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="mlwarden", standalone_mode=False)
    except click.UsageError as exc:
        return die(UsageError(exc.format_message().strip()))
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        return die(UsageError(exc.format_message()))
    except MlwardenError as exc:
        return die(exc)
    except BrokenPipeError:
        return 0
    return int(result) if isinstance(result, int) else 0
