"""`proverctl mcp`: the MCP server for coding agents (proverctl/mcpserver.py holds it)."""

from __future__ import annotations

import sys

import typer

from proverctl.cli._output import info
from proverctl.errors import EnvironmentMissing, UsageError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def mcp_command(
    http: bool = typer.Option(False, "--http", help="Serve streamable HTTP on loopback (bearer token) instead of stdio."),
    host: str = typer.Option("127.0.0.1", "--host", help="With --http: loopback address to bind."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="With --http: port."),
    max_jobs: int = typer.Option(1, "--max-jobs", min=1, help="Prove jobs at once (more calls wait)."),
) -> None:
    """Serve proverctl's core to coding agents over MCP: check (the judge's verdict), targets, prove,
    show, attempts, models. stdio by default (what an agent starts); --http for streamable HTTP on
    loopback, where every request needs `Authorization: Bearer $PROVERCTL_MCP_TOKEN` (a token is made
    and printed when the variable is unset).

    \b
    Examples:
      claude mcp add proverctl -- proverctl mcp
      PROVERCTL_MCP_TOKEN=secret proverctl mcp --http --port 8765
    """
    try:
        from proverctl import mcpserver
    except ImportError as exc:
        raise EnvironmentMissing(f"the MCP server needs the `mcp` package ({exc.name} is missing)",
                                 hint="pip install 'proverctl[mcp]'") from None
    server = mcpserver.build_server(max_jobs=max_jobs)
    if not http:
        server.run("stdio")
        return
    if host not in LOOPBACK:
        raise UsageError(f"--host {host} is not a loopback address", hint="the MCP server listens on 127.0.0.1 or ::1 only")
    token = mcpserver.new_token()
    info(f"MCP server at http://{host}:{port}/mcp (streamable HTTP); send `Authorization: Bearer {token}`; Ctrl-C stops it")
    sys.stderr.flush()
    mcpserver.serve_http(server, host=host, port=port, token=token)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp_command)
