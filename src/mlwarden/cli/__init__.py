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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlwarden")
def cli() -> None:
    """mlwarden: Zero Trust for machine-learning systems."""


def _register() -> None:
    from mlwarden.cli.audit import audit_group
    from mlwarden.cli.demo import demo_command
    from mlwarden.cli.packages import bom_command, deps_command
    from mlwarden.cli.scan import scan_command
    from mlwarden.cli.serve import serve_command
    from mlwarden.cli.sign import data_group, sign_command, verify_command

    cli.add_command(scan_command)
    cli.add_command(demo_command)
    cli.add_command(deps_command)
    cli.add_command(bom_command)
    cli.add_command(sign_command)
    cli.add_command(verify_command)
    cli.add_command(data_group)
    cli.add_command(audit_group)
    cli.add_command(serve_command)


_register()


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
