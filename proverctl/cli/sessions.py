"""`proverctl serve`, `proverctl ps`, `proverctl stop`: local inference sessions."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Optional

import typer

from proverctl.cli import completion as complete
from proverctl.cli._output import FormatOption, columns, emit, info, resolve_format, stderr_is_tty
from proverctl.errors import EnvironmentMissing, UsageError


def serve_command(
    model: Optional[str] = typer.Argument(None, metavar="[MODEL]", autocompletion=complete.models, help="Alias, org/repo or model directory [default: PROVERCTL_MODEL]."),
    engine: Optional[str] = typer.Option(None, "--engine", autocompletion=complete.engines, help="vllm (GPU) or transformers (CPU / small GPU) [default: vllm when installed with a GPU]."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Port [default: a free one]."),
    gpu_memory_utilization: Optional[float] = typer.Option(None, "--gpu-memory-utilization", min=0.05, max=1.0, help="vLLM: fraction of GPU memory to use."),
    tensor_parallel_size: int = typer.Option(1, "--tensor-parallel-size", min=1, help="vLLM: GPUs to shard the model over."),
    data_parallel: int = typer.Option(1, "--data-parallel", "-dp", min=1, help="vLLM: engine replicas behind one server, each on "
                                                                              "--tensor-parallel-size GPUs (vLLM's --data-parallel-size)."),
    max_model_len: Optional[int] = typer.Option(None, "--max-model-len", min=256, help="vLLM: context length to allocate."),
    device: Optional[str] = typer.Option(None, "--device", autocompletion=complete.values("auto", "cpu", "cuda:0"), help="transformers: cpu, cuda:0, auto."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Start in the background and return once ready."),
    timeout: float = typer.Option(900.0, "--timeout", min=1.0, help="Seconds to wait for the server to list the model."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the session [default: the model's alias]; a new name starts a second one."),
    format: FormatOption = None,
) -> None:
    """Start a long-lived inference session (an OpenAI-compatible server) for a pulled model.

    Ready when GET /v1/models lists the model. In the foreground Ctrl-C stops it; with --detach it
    keeps running until `proverctl stop`. A model that is already served is not loaded again: the
    live session is reused and said (`--name` starts a second one).

    Examples: proverctl serve deepseek-prover-v2-7b --detach ; proverctl serve ./my-model --engine transformers ;
    proverctl serve deepseek-prover-v2-7b --data-parallel 8 --detach (one vLLM over 8 GPUs, one endpoint)
    """
    from proverctl.inference import sessions
    from proverctl.models.catalog import parse_model_ref
    from proverctl.paths import Paths
    from proverctl.settings import Settings

    fmt = resolve_format(format, allow_jsonl=False)
    settings = Settings.load({"model": model})
    ref = parse_model_ref(settings.model)
    paths = Paths.resolve()
    if name is None:
        live = sessions.find_session(ref, paths)
        if live is not None:
            info(f"{ref.display} is already served by session {live.name} at {live.url} (model id {live.model_id}); reusing it "
                 f"(`--name NAME` starts a second one)")
            emit(live.as_dict("ready"), fmt, lambda c: c.print(f"session {live.name} ready at {live.url}", highlight=False))
            return
    elif any(r.name == name for r, _ in sessions.live_sessions(paths)):
        raise UsageError(f"a session named {name!r} is already running", hint="choose another --name, or see `proverctl ps`")
    status = None
    if stderr_is_tty():
        from rich.console import Console

        status = Console(stderr=True).status("loading the model")

    if ref.entry is not None and ref.entry.extra.get("serving"):
        info(ref.entry.extra["serving"])  # what serving this model takes (the catalog's note)

    def started(record) -> None:
        info(f"starting {record.engine} for {ref.display} on {record.url} (log: {record.log})")
        if status is not None:
            status.start()

    try:
        record, proc = sessions.launch(
            ref, engine=engine, host=host, port=port, gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel, max_model_len=max_model_len, device=device,
            timeout=timeout, name=name,
            on_started=started, on_tick=(lambda s: status.update(f"loading the model ({s:.0f} s)")) if status else None, paths=paths,
        )
    finally:
        if status is not None:
            status.stop()
    name = record.name
    data = record.as_dict("ready")
    if detach:
        emit(data, fmt, lambda c: c.print(f"session {name} ready at {record.url} (model id {record.model_id}); `proverctl stop {name}` ends it",
                                          highlight=False))
        return
    info(f"session {name} ready at {record.url}; Ctrl-C stops it")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        while proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        sessions.stop_sessions(record.name, paths=paths)
        info(f"session {name} stopped")
        return
    sessions.stop_sessions(record.name, paths=paths)
    raise EnvironmentMissing(f"the {record.engine} server exited with {sessions.exit_reason(record)}; last log lines:\n{sessions.tail(Path(record.log))}",
                             hint=f"full log: {record.log}")


def _terminate(signum, frame) -> None:
    """SIGTERM on a foreground serve: stop the session the same way Ctrl-C does."""
    raise KeyboardInterrupt


def ps_command(format: FormatOption = None) -> None:
    """List sessions (model, engine, device, endpoint, pid, memory, uptime, status). One that died stays
    listed as "exited (signal N)" with its log until `proverctl stop NAME` clears it.

    Example: proverctl ps --format json
    """
    from proverctl.inference.sessions import all_sessions, exit_status, resources

    rows = []
    for record, status in all_sessions():
        if status.startswith("exited"):
            ended = exit_status(record)
            rows.append({**record.as_dict(status), "rss_mib": 0.0, "device": resources(record)["device"],
                         "exit": {"returncode": ended.get("returncode"), "signal": ended.get("signal"), "ended": ended.get("ended")}})
        else:
            rows.append({**record.as_dict(status), **resources(record)})

    def human(console):
        from rich.table import Table

        if not rows:
            console.print("no sessions; `proverctl serve MODEL --detach` starts one", highlight=False)
            return
        table = Table(*columns("name", "model", "engine", "device", "endpoint", "pid", "memory", "uptime", "status",
                               keep=("name", "model", "endpoint")))
        for r in rows:
            dead = r["status"].startswith("exited")
            status = r["status"]
            if not dead and r.get("expires"):
                status += f", stops {time.strftime('%H:%M', time.localtime(r['expires']))}"  # --keep-alive
            table.add_row(r["name"], r["model"], r["engine"], r["device"], r["endpoint"], str(r["pid"]),
                          "-" if dead else f"{r['rss_mib']:.0f} MiB", "-" if dead else _uptime(r["uptime_s"]), status)
        console.print(table)
        for r in rows:
            if r["status"].startswith("exited"):
                console.print(f"{r['name']} {r['status']}, see {r['log']}; `proverctl stop {r['name']}` clears it", highlight=False,
                              soft_wrap=True)

    emit(rows, resolve_format(format), human)


def _uptime(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def stop_command(
    name: Optional[str] = typer.Argument(None, metavar="[NAME]", autocompletion=complete.sessions, help="Session name, model, port or pid (see `proverctl ps`)."),
    all_sessions: bool = typer.Option(False, "--all", help="Stop every session."),
    format: FormatOption = None,
) -> None:
    """Stop a session: SIGTERM its process group, then SIGKILL what is left.

    Examples: proverctl stop deepseek-prover-v2-7b ; proverctl stop --all
    """
    from proverctl.inference import sessions
    from proverctl.paths import Paths

    if not name and not all_sessions:
        raise UsageError("name a session to stop, or pass --all", hint="`proverctl ps` lists them")
    # Which had already exited (their process is gone; no need to ask the live ones' servers anything).
    records = sessions.load_records(Paths.resolve())
    exited = {r.name: sessions.describe_exit(r) for r in records if not sessions.session_alive(r)}
    # The pid a user knows is the server's own (ps shows it); read it before the supervisor's files go.
    server_pids = {r.name: r.server_pid or r.pid for r in records}
    stopped = sessions.stop_sessions(name, everything=all_sessions,
                                     on_stopping=lambda r: info(f"stopping {r.name} (pid {server_pids.get(r.name, r.pid)}, {r.engine} "
                                                                f"on {r.url}): SIGTERM, then SIGKILL after 10 s ..."))
    rows = [{"name": r.name, "pid": server_pids.get(r.name, r.pid), "supervisor_pid": r.pid, "model": r.model,
             "status": exited.get(r.name, "stopped")} for r in stopped]

    def human(console) -> None:
        lines = [f"stopped {r['name']} (pid {r['pid']})" if r["status"] == "stopped"
                 else f"cleared {r['name']}, which had {r['status']}" for r in rows]
        console.print("\n".join(lines) or "no sessions", highlight=False)

    emit(rows, resolve_format(format), human)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("ps")(ps_command)
    app.command("stop")(stop_command)
