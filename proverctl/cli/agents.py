"""`proverctl mcp`: the MCP server for coding agents (proverctl/mcpserver.py holds it)."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Optional

import typer

from proverctl.cli._output import info
from proverctl.errors import EnvironmentMissing, UsageError

LOOPBACK = ("127.0.0.1", "::1", "localhost")
# The settings an agent's client may not pass through its environment, offered as options (the knob
# table's own flags and help): where Lean is, which judge and sandbox, which model.
MCP_KNOBS = ("model", "endpoint", "judge", "sandbox", "lean_profile", "lean_project", "repl_command", "timeout", "workers",
             "allow_native_decide", "allow_aux_lemmas")


def mcp_command(**options) -> None:
    """Serve proverctl's core to coding agents over MCP: lean_check (the judge's verdict), lean_goals,
    lean_targets, prove_start / prove_status / prove_cancel (a prove as a job: answers at once, polled
    inside any client's timeout), the blocking prove, run_show, run_attempts, models_list. stdio by
    default (what an agent starts); --http for streamable HTTP on loopback, where every request needs
    `Authorization: Bearer TOKEN` (PROVERCTL_MCP_TOKEN, or a token made and printed at start).

    Clients often start servers without your shell's environment: pass what proverctl needs as options
    (--lean-project, --home, --model, ...), and start it by absolute path if the venv is not on PATH.

    \b
    Examples:
      claude mcp add proverctl -- "$(command -v proverctl)" mcp --lean-project ~/lean/ws
      PROVERCTL_MCP_TOKEN=secret proverctl mcp --http --port 8765
    """
    from proverctl.cli.knobs import request_values

    http, host, port, max_jobs, home = (options.pop(k) for k in ("http", "host", "port", "max_jobs", "home"))
    if home:
        os.environ["PROVERCTL_HOME"] = os.path.abspath(os.path.expanduser(home))
    defaults = request_values(options)
    try:
        from proverctl import mcpserver
    except ImportError as exc:
        raise EnvironmentMissing(f"the MCP server needs the `mcp` package ({exc.name} is missing)",
                                 hint="pip install 'proverctl[mcp]'") from None
    if http and host not in LOOPBACK:
        raise UsageError(f"--host {host} is not a loopback address", hint="the MCP server listens on 127.0.0.1 or ::1 only")
    _check_defaults(defaults)
    server = mcpserver.build_server(max_jobs=max_jobs, defaults=defaults)
    if not http:
        server.run("stdio")
        return
    token, made = mcpserver.new_token()
    # A token the user set is theirs: never printed (logs and terminals keep it); only one made here is.
    auth = f"send `Authorization: Bearer {token}`" if made else "send `Authorization: Bearer $PROVERCTL_MCP_TOKEN`"
    info(f"MCP server at http://{host}:{port}/mcp (streamable HTTP); {auth}; Ctrl-C stops it")
    sys.stderr.flush()
    mcpserver.serve_http(server, host=host, port=port, token=token)


def _check_defaults(defaults: dict) -> None:
    """Options that name something are checked at start, not at the first tool call."""
    from types import SimpleNamespace

    from proverctl.proving.request import settings_flags
    from proverctl.settings import Settings

    Settings.load(settings_flags(SimpleNamespace(**defaults)))
    project = defaults.get("lean_project")
    if project and not os.path.isdir(os.path.expanduser(project)):
        raise UsageError(f"--lean-project {project} is not a directory", hint="give the Lean workspace `proverctl lean setup` made")


def _signature() -> None:
    from proverctl.cli.knobs import with_knobs

    P = inspect.Parameter
    trailing = [
        P("http", P.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            False, "--http", help="Serve streamable HTTP on loopback (bearer token) instead of stdio.")),
        P("host", P.KEYWORD_ONLY, annotation=str, default=typer.Option("127.0.0.1", "--host", help="With --http: loopback address to bind.")),
        P("port", P.KEYWORD_ONLY, annotation=int, default=typer.Option(8765, "--port", min=1, max=65535, help="With --http: port.")),
        P("max_jobs", P.KEYWORD_ONLY, annotation=int, default=typer.Option(1, "--max-jobs", min=1, help="Prove jobs at once (more wait, queued).")),
        P("home", P.KEYWORD_ONLY, annotation=Optional[str], default=typer.Option(
            None, "--home", metavar="DIR", help="Put every proverctl directory under DIR (as PROVERCTL_HOME does).")),
    ]
    with_knobs(mcp_command, [], MCP_KNOBS, trailing)


_signature()


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp_command)
