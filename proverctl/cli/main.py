"""The proverctl command: the Typer app, its one error boundary, and the entry point.

Command modules register themselves on `app`; each only parses flags, calls one core function and
prints. Known errors (ProverctlError) become one line on stderr and their exit code; anything else is
a bug and is re-raised with its traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from proverctl import __version__
from proverctl.cli._output import report_error
from proverctl.errors import ExitCode, ProverctlError, UsageError
from proverctl.settings import debug_enabled


# typer vendors click; its UsageError is the base of every flag/argument parsing error.
ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class ProverctlGroup(TyperGroup):
    """Typer group with the error boundary around every (sub)command."""

    def _main_shell_completion(self, ctx_args: Any, prog_name: str, complete_var: str | None = None) -> None:
        # A TAB in bash/zsh/fish (see cli/completion.py): answer it and exit before any command runs.
        shell = os.environ.get("_PROVERCTL_COMPLETE")
        if shell:
            from proverctl.cli.completion import complete

            sys.exit(complete(self, shell))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ClickUsageError as exc:
            # One line, like every other error, instead of click's usage block.
            command = exc.ctx.command_path if getattr(exc, "ctx", None) else "proverctl"
            report_error(UsageError(exc.format_message(), hint=f"see `{command} --help`"))
            raise typer.Exit(int(ExitCode.USAGE)) from None
        except ProverctlError as exc:
            if debug_enabled():
                traceback.print_exc()
            report_error(exc)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


HELP = """Run open neural theorem provers on Lean 4 files.

\b
Examples:
  proverctl pull deepseek-prover-v2-7b     # weights into the Hugging Face cache
  proverctl models catalog                 # known provers
  proverctl list                           # what is pulled

\b
Exit codes: 0 ok, 1 not proved / check failed, 2 usage error,
3 environment missing (model, Lean, GPU, session, disk, network),
4 verifier failure, 130 interrupted.
"""

app = typer.Typer(
    cls=ProverctlGroup,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"proverctl {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run open neural theorem provers on Lean 4 files."""


def _register() -> None:
    from proverctl.cli import agents, bench, completion, info, lean, models, prove, runs, sessions

    prove.register(app)
    bench.register(app)
    models.register(app)
    sessions.register(app)
    lean.register(app)
    runs.register(app)
    info.register(app)
    completion.register(app)
    agents.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="proverctl")
