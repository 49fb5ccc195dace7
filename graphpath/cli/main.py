"""Command line: parse → options → one library call → render → exit code. No analysis here.

This module holds the group, its exit codes and the command registration. Each command lives
in the module of its group (:mod:`.static`, :mod:`.numeric`, :mod:`.report`, :mod:`.audit`,
:mod:`.zoo`) and never imports this one. Heavy modules are imported inside the commands so
that ``graphpath --help`` starts fast and never imports torch or matplotlib.

Exit codes (DESIGN.md "Contracts"): 0 clean, 1 findings at or above ``--fail-on``, 2 usage or
input error, 3 internal error.
"""

from __future__ import annotations

import click

from graphpath import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class GraphpathGroup(click.Group):
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


@click.group(cls=GraphpathGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="graphpath")
def cli() -> None:
    """Static and numeric gradient-flow analysis of ONNX object detectors."""


def _add_commands() -> None:
    from graphpath.cli.audit import audit, rules
    from graphpath.cli.numeric import backward
    from graphpath.cli.report import report
    from graphpath.cli.static import analyze, blocks, paths
    from graphpath.cli.zoo import zoo

    for command in (analyze, paths, blocks, zoo, backward, report, audit, rules):
        cli.add_command(command)


_add_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="graphpath")
