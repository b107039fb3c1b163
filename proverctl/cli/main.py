"""The proverctl command: the Typer app, its one error boundary, and the entry point.

Command modules register themselves on `app`; each only parses flags, calls one core function and
prints. Known errors (ProverctlError) become one line on stderr and their exit code; anything else is
a bug and is re-raised with its traceback.
"""

from __future__ import annotations

import os
import sys
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
                import traceback

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


# Which module registers each command. A TAB after a command word imports only that command's module
# (completion needs its options, not the other commands'); everything else registers them all.
# tests/test_completions.py checks this map against what the modules really register.
COMMAND_MODULES = {
    "prove": "prove", "bench": "bench", "models": "models", "pull": "models", "list": "models", "rm": "models",
    "serve": "sessions", "ps": "sessions", "stop": "sessions", "targets": "lean", "check": "lean", "doctor": "lean",
    "lean": "lean", "runs": "runs", "cache": "runs", "show": "runs", "export": "runs", "tui": "runs", "paths": "info", "config": "info",
    "completion": "completion", "mcp": "agents",
}
ORDER = ("prove", "bench", "models", "sessions", "lean", "runs", "info", "completion", "agents")  # the --help order


def _module(name: str):
    """A command module, imported by a static import (which the layering contracts see)."""
    if name == "prove":
        from proverctl.cli import prove as module
    elif name == "bench":
        from proverctl.cli import bench as module
    elif name == "models":
        from proverctl.cli import models as module
    elif name == "sessions":
        from proverctl.cli import sessions as module
    elif name == "lean":
        from proverctl.cli import lean as module
    elif name == "runs":
        from proverctl.cli import runs as module
    elif name == "info":
        from proverctl.cli import info as module
    elif name == "completion":
        from proverctl.cli import completion as module
    elif name == "agents":
        from proverctl.cli import agents as module
    else:
        raise KeyError(name)
    return module


def _register() -> None:
    names = ORDER
    if os.environ.get("_PROVERCTL_COMPLETE"):
        first = os.environ.get("_PROVERCTL_COMPLETE_WORDS", "").split("\n")[0]
        if first in COMMAND_MODULES:
            names = (COMMAND_MODULES[first],)
    for name in names:
        _module(name).register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="proverctl")
