"""Command line: parse → options → one library call → render → exit code. No analysis here.

This module holds the group, its exit codes and the table of commands. Each command lives in
the module of its group (:mod:`.static`, :mod:`.numeric`, :mod:`.report`, :mod:`.audit`,
:mod:`.zoo`), which is imported only when the command runs or ``--help`` lists it: ``graphpath
analyze`` never imports the audit rules or the stability table, and nothing imports torch or
matplotlib before a command needs it.

Exit codes (DESIGN.md "Contracts"): 0 clean, 1 findings at or above ``--fail-on``, 2 usage or
input error, 3 internal error.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import click

from graphpath import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

#: Command name → ``module:attribute`` of its click command (imported on first use).
COMMANDS: dict[str, str] = {
    "analyze": "graphpath.cli.static:analyze",
    "annotate": "graphpath.cli.annotate:annotate",
    "audit": "graphpath.cli.audit:audit",
    "backward": "graphpath.cli.numeric:backward",
    "blocks": "graphpath.cli.static:blocks",
    "cache": "graphpath.cli.cache:cache",
    "curvature": "graphpath.cli.curvature:curvature",
    "paths": "graphpath.cli.static:paths",
    "report": "graphpath.cli.report:report",
    "rules": "graphpath.cli.audit:rules",
    "zoo": "graphpath.cli.zoo:zoo",
}

#: click >= 8.4 raises this for an unknown command, with close names as suggestions.
_NO_SUCH_COMMAND: Any = getattr(click.exceptions, "NoSuchCommand", None)


class LazyGroup(click.Group):
    """A group whose commands are named by import path and imported when used (click's
    documented ``LazyGroup`` pattern), beside any added the usual way.

    >>> group = LazyGroup(lazy_commands={"zoo": "graphpath.cli.zoo:zoo"})
    >>> group.list_commands(click.Context(group)), group.get_command(click.Context(group), "zoo").name
    (['zoo'], 'zoo')
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = self.lazy_commands[cmd_name].partition(":")
        command = getattr(import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                              list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click suggests close names from the commands added the usual way only.
            if _NO_SUCH_COMMAND is None or not isinstance(exc, _NO_SUCH_COMMAND):
                raise
            raise _NO_SUCH_COMMAND(exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None


class GraphpathGroup(LazyGroup):
    """Maps graphpath's error kinds onto exit codes for every subcommand."""

    def invoke(self, ctx: click.Context) -> object:
        from graphpath.errors import GraphpathError

        try:
            return super().invoke(ctx)
        except GraphpathError as exc:
            click.echo(f"graphpath: error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("graphpath: interrupted", err=True)
            ctx.exit(130)
        except Exception:
            import traceback

            click.echo(traceback.format_exc(), err=True, nl=False)
            click.echo(
                "graphpath: internal error: this is a bug in graphpath; please report it with "
                "the traceback above.", err=True,
            )
            ctx.exit(EXIT_INTERNAL)
        return None


@click.group(cls=GraphpathGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="graphpath")
def cli() -> None:
    """Static and numeric gradient-flow analysis of ONNX object detectors."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="graphpath")
