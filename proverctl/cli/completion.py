"""Shell completion through the CLI framework's own machinery, plus the values only proverctl knows.

Click (vendored by Typer) resolves the command line to the parameter being completed and asks that
parameter for candidates; choices come from Click, everything else from the callbacks below (model
aliases, benchmark names, run ids and targets from the store, session names, theorem names from the
file on the line). What the shell scripts add is only the glue: they hand the words before the cursor
to `proverctl` (with `_PROVERCTL_COMPLETE=SHELL`), read `TYPE<TAB>VALUE<TAB>HELP` lines back and let the
shell complete file and directory names itself where the type says so.

Why not Typer's own scripts (`--install-completion`): in typer 0.29 they drop Click's item types, so
no shell completes file names for a file argument, and zsh gets a literal `_files` only when nothing
else matched. The protocol here keeps the types; everything else (parsing, context resolution,
choices, option names) is Click's.

A completion callback never raises: a TAB must not print a traceback, so a failure is no candidates.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable

import typer

from proverctl.errors import UsageError

# Parameters whose metavar is one of these complete to file (or directory) names in the shell.
FILE_METAVARS = {"FILE", "PATH"}
DIR_METAVARS = {"DIR"}
SHELLS = ("bash", "zsh", "fish")
ENV = "_PROVERCTL_COMPLETE"


# ---------------------------------------------------------------------------------------------
# Value callbacks (Typer's `autocompletion=`: (ctx, args, incomplete) -> [value | (value, help)])


def _safe(fn: Callable[..., Iterable]) -> Callable[..., list]:
    def callback(ctx: Any, args: list[str], incomplete: str) -> list:
        try:
            return list(fn(ctx, incomplete))
        except Exception:  # noqa: BLE001 - a TAB never shows a traceback
            from proverctl.settings import debug_enabled

            if debug_enabled():  # PROVERCTL_DEBUG=1: the traceback, on stderr (the scripts discard it)
                import traceback

                traceback.print_exc()
            return []

    callback.__name__ = fn.__name__
    return callback


def values(*choices: str) -> Callable[..., list]:
    """Fixed values of a free-text option (one that also accepts things outside the list)."""
    return _safe(lambda ctx, incomplete: choices)


def setting(name: str) -> Callable[..., list]:
    """The values a choice setting accepts (judge, sandbox, ...): the settings' own list, not a copy."""
    return _safe(lambda ctx, incomplete: _setting_choices(name))


def _setting_choices(name: str) -> tuple[str, ...]:
    from proverctl.settings import SETTINGS

    return next(spec.parse.choices for spec in SETTINGS if spec.name == name)


@_safe
def modes(ctx: Any, incomplete: str) -> Iterable:
    from proverctl.prompts.families import MODES

    return MODES


@_safe
def prove_formats(ctx: Any, incomplete: str) -> Iterable:
    """`prove --format`: the data formats, and `lean` (the completed file)."""
    from proverctl.cli._output import Format

    return [f.value for f in Format] + ["lean"]


@_safe
def models(ctx: Any, incomplete: str) -> Iterable:
    from proverctl.models.catalog import load_catalog

    return [(entry.alias, entry.repo_id or "hub repository not confirmed") for entry in load_catalog()]


@_safe
def benchmarks(ctx: Any, incomplete: str) -> Iterable:
    from proverctl.benchmarks import BENCHMARKS

    return [(b.name, b.description) for b in BENCHMARKS.values()]


@_safe
def families(ctx: Any, incomplete: str) -> Iterable:
    from proverctl.prompts import families as registry

    return registry.names()


@_safe
def engines(ctx: Any, incomplete: str) -> Iterable:
    from proverctl.inference import engines as registry

    return registry.names()


@_safe
def planners(ctx: Any, incomplete: str) -> Iterable:
    from proverctl.decompose.planners import PLANNERS

    return [(p.name, p.description) for p in PLANNERS.values()]


@_safe
def profiles(ctx: Any, incomplete: str) -> Iterable:
    from proverctl.lean.workspace import PROFILES

    return PROFILES


def _run_rows() -> list[tuple[str, str]]:
    from proverctl.store.db import recorded_store

    with recorded_store() as store:
        rows = store.runs(limit=100)
    return [(str(r["id"]), f"{r['n_proved']}/{r['n_targets']} proved, {os.path.basename(r['input'])}, {r['status']}")
            for r in rows]


@_safe
def runs(ctx: Any, incomplete: str) -> Iterable:
    return _run_rows()


@_safe
def references(ctx: Any, incomplete: str) -> Iterable:
    """`show`: run ids, then RUN/TARGET once a run id and a slash are typed."""
    run, slash, _ = incomplete.partition("/")
    if not slash or not run.isdigit():
        return _run_rows()
    from proverctl.store.db import recorded_store

    with recorded_store() as store:
        return [(f"{run}/{t['name'] or t['ordinal']}", t["status"]) for t in store.targets(int(run))]


@_safe
def sessions(ctx: Any, incomplete: str) -> Iterable:
    from proverctl.inference.sessions import load_records
    from proverctl.paths import Paths

    return [(r.name, f"{r.model} on {r.url}") for r in load_records(Paths.resolve())]


@_safe
def theorems(ctx: Any, incomplete: str) -> Iterable:
    """Target names of the file already on the command line (`prove FILE -t <TAB>`)."""
    from pathlib import Path

    from proverctl.lean.source import Source

    # While an option still lacks its value Click leaves the positional words unparsed in ctx.args.
    words = [ctx.params.get("input"), *ctx.args]
    path = next((Path(w) for w in words if w and w.endswith(".lean") and Path(w).is_file()), None)
    if path is None:
        return []
    return [(t.name, f"line {t.line}") for t in Source(path.read_text(encoding="utf-8", errors="replace")).targets
            if t.name]


# ---------------------------------------------------------------------------------------------
# The protocol


def candidates(cli: Any, args: list[str], incomplete: str) -> list[tuple[str, str, str]]:
    """(type, value, help) for the word being completed after `args` (the words before it)."""
    from typer._click.core import Parameter
    from typer._click.shell_completion import _resolve_context, _resolve_incomplete

    ctx = _resolve_context(cli, {}, "proverctl", args)
    obj, incomplete = _resolve_incomplete(ctx, args, incomplete)
    if isinstance(obj, Parameter) and obj.metavar in FILE_METAVARS | DIR_METAVARS:
        kind = "dir" if obj.metavar in DIR_METAVARS else "file"
        items = [(kind, incomplete, "")]
        # A file argument may also take known words (a benchmark name, `-`): offer both.
        items += [("plain", i.value, i.help or "") for i in obj.shell_complete(ctx, incomplete) if i.type == "plain"]
        return items
    return [(item.type, str(item.value), item.help or "") for item in obj.shell_complete(ctx, incomplete)]


def complete(cli: Any, shell: str) -> int:
    """Answer one TAB: the words before the cursor come in _PROVERCTL_COMPLETE_WORDS (one per line),
    the word under it in _PROVERCTL_COMPLETE_INCOMPLETE."""
    if shell not in SHELLS:
        sys.stderr.write(f"proverctl: error: {ENV}={shell!r} is not a shell proverctl completes (bash, zsh, fish)\n")
        return 2
    words = os.environ.get("_PROVERCTL_COMPLETE_WORDS", "")
    args = [w for w in words.split("\n") if w] if words else []
    incomplete = os.environ.get("_PROVERCTL_COMPLETE_INCOMPLETE", "")
    try:
        items = candidates(cli, args, incomplete)
    except Exception:  # noqa: BLE001 - an unparsable line completes to nothing
        items = []
    for kind, value, help_text in items:
        help_text = " ".join(help_text.split())
        sys.stdout.write(f"{kind}\t{value}\t{help_text}\n")
    return 0


BASH = r"""# bash completion for proverctl (`proverctl completion bash`); needs bash >= 4.4.
# Install: mkdir -p ~/.local/share/bash-completion/completions && proverctl completion bash > ~/.local/share/bash-completion/completions/proverctl
_proverctl() {
    local IFS=$'\n' cur="${COMP_WORDS[COMP_CWORD]}" line kind value
    local lines
    lines=$(_PROVERCTL_COMPLETE=bash \
            _PROVERCTL_COMPLETE_WORDS="$(printf '%s\n' "${COMP_WORDS[@]:1:COMP_CWORD-1}")" \
            _PROVERCTL_COMPLETE_INCOMPLETE="$cur" "${COMP_WORDS[0]}" 2>/dev/null)
    COMPREPLY=()
    for line in $lines; do
        kind=${line%%$'\t'*}
        value=${line#*$'\t'}
        value=${value%%$'\t'*}
        case $kind in
            file) compopt -o filenames 2>/dev/null; COMPREPLY+=($(compgen -f -- "$cur")) ;;
            dir) compopt -o filenames 2>/dev/null; COMPREPLY+=($(compgen -d -- "$cur")) ;;
            *) COMPREPLY+=("$value") ;;
        esac
    done
    return 0
}
complete -o nosort -F _proverctl proverctl
"""

ZSH = r"""#compdef proverctl
# zsh completion for proverctl (`proverctl completion zsh`).
# Install: mkdir -p ~/.zfunc && proverctl completion zsh > ~/.zfunc/_proverctl, and fpath=(~/.zfunc $fpath) before compinit
# in ~/.zshrc (or `source <(proverctl completion zsh)` after compinit)
_proverctl() {
    local -a described plain
    local line kind value help files=0 dirs=0
    local IFS=$'\n'
    for line in $(_PROVERCTL_COMPLETE=zsh \
                  _PROVERCTL_COMPLETE_WORDS="${(pj:\n:)words[2,CURRENT-1]}" \
                  _PROVERCTL_COMPLETE_INCOMPLETE="${words[CURRENT]}" "${words[1]}" 2>/dev/null); do
        kind=${line%%$'\t'*}
        value=${line#*$'\t'}
        help=${value#*$'\t'}
        value=${value%%$'\t'*}
        case $kind in
            file) files=1 ;;
            dir) dirs=1 ;;
            *) if [[ -n $help ]]; then described+=("${value//:/\\:}:$help"); else plain+=("$value"); fi ;;
        esac
    done
    (( ${#described} )) && _describe -V values described
    (( ${#plain} )) && compadd -V plain -Q -a plain
    (( files )) && _files
    (( dirs )) && _files -/
    return 0
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _proverctl "$@"
else
    compdef _proverctl proverctl
fi
"""

FISH = r"""# fish completion for proverctl (`proverctl completion fish`).
# Install: mkdir -p ~/.config/fish/completions && proverctl completion fish > ~/.config/fish/completions/proverctl.fish
function __proverctl_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l words (string join \n -- $tokens[2..-1] | string collect)
    _PROVERCTL_COMPLETE=fish _PROVERCTL_COMPLETE_WORDS="$words" _PROVERCTL_COMPLETE_INCOMPLETE="$current" $tokens[1] 2>/dev/null | while read -l line
        set -l parts (string split \t -- $line)
        switch $parts[1]
            case file
                __fish_complete_path $current
            case dir
                __fish_complete_directories $current
            case '*'
                if test -n "$parts[3]"
                    printf '%s\t%s\n' $parts[2] $parts[3]
                else
                    printf '%s\n' $parts[2]
                end
        end
    end
end
complete -c proverctl -f -a '(__proverctl_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


def script(shell: str) -> str:
    return SCRIPTS[shell]


def completion_command(
    shell: str = typer.Argument(..., metavar="SHELL", help="bash, zsh or fish.", autocompletion=values(*SHELLS)),
) -> None:
    """Print the completion script for SHELL.

    \b
    Examples:
      proverctl completion bash > ~/.local/share/bash-completion/completions/proverctl
      proverctl completion zsh > "${fpath[1]}/_proverctl"
      proverctl completion fish > ~/.config/fish/completions/proverctl.fish
      source <(proverctl completion zsh)      # in ~/.zshrc, after compinit

    Completes commands, options, their values (formats, families, profiles, judges), model aliases,
    benchmark names, run ids (and RUN/TARGET for show), session names, file names and the theorem
    names of the file already on the line (`prove FILE -t <TAB>`).
    """
    if shell not in SCRIPTS:
        raise UsageError(f"no completion for shell {shell!r}", hint="use bash, zsh or fish")
    sys.stdout.write(SCRIPTS[shell])


def register(app: "typer.Typer") -> None:
    app.command("completion")(completion_command)
