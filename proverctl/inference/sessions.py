"""Inference sessions: a long-lived OpenAI-compatible server process (vLLM on a GPU, or
`transformers serve` on CPU / a small GPU) that proverctl starts, records, finds and stops.

A session record (JSON under the runtime dir) holds pid, port, model, engine, start time, log file
and command line. A session is *ready* when `GET /v1/models` lists its model; `/health` alone only
means the process is alive. The server runs in its own process group so `stop` ends it and every
worker it spawned, under a small supervisor (supervise.py) that records how it ended: a session that
died stays listed by `ps` as "exited (signal N)" with its log until `stop` clears it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from proverctl.errors import EnvironmentMissing, UsageError
from proverctl.models.catalog import ModelRef
from proverctl.paths import Paths

GIB = 2**30


@dataclass
class SessionRecord:
    name: str
    model: str  # what the user named (alias, repo or directory)
    model_id: str  # the id the server lists and requests must name
    path: str  # the snapshot directory served
    engine: str
    host: str
    port: int
    pid: int
    started: float
    log: str
    command: list[str] = field(default_factory=list)
    family: str | None = None
    exit_file: str | None = None  # written by the supervisor when the server ends
    expires: float | None = None  # --keep-alive: when the session stops itself (None: it stays)
    keep_alive_s: float | None = None  # the keep-alive it was given (a run that reuses it gives it again)
    device: str | None = None  # what the engine runs on (cuda, cpu, cuda:1), decided at start

    @property
    def supervisor_pid(self) -> int:
        """`pid` is the supervisor's (it leads the session's process group)."""
        return self.pid

    @property
    def server_pid(self) -> int | None:
        """The model server's own pid, as the supervisor wrote it down (None before it did)."""
        if not self.exit_file:
            return None
        try:
            return int(Path(f"{self.exit_file}.pid").read_text())
        except (OSError, ValueError):
            return None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def as_dict(self, status: str | None = None) -> dict:
        data = asdict(self)
        # `pid` is the server's own (the process a user would kill); the supervisor leads its group.
        data["supervisor_pid"] = self.pid
        data["pid"] = self.server_pid or self.pid
        data["endpoint"] = self.url
        data["uptime_s"] = round(time.time() - self.started, 1)
        if status:
            data["status"] = status
        return data


def resources(record: SessionRecord) -> dict:
    """What a session holds now: RSS of its whole process tree (MiB), and the device it runs on (from its
    command line: vLLM on the GPU, transformers' `--device`)."""
    import psutil

    seen: dict[int, int] = {}  # pid -> rss, over the supervisor's tree and the server's (it outlives a killed supervisor)
    for root in {record.pid, record.server_pid} - {None}:
        try:
            leader = psutil.Process(root)
            for proc in [leader, *leader.children(recursive=True)]:
                try:
                    seen[proc.pid] = proc.memory_info().rss
                except psutil.Error:
                    continue
        except psutil.Error:
            continue
    rss = sum(seen.values())
    return {"rss_mib": round(rss / 2**20, 1), "device": record.device or device_of(record.engine, record.command)}


def device_of(engine: str, command: list[str], available: list | None = None) -> str:
    """What the engine runs on: vLLM on CUDA; transformers serve on its --device, and without one (or
    `auto`) on the first GPU when there is one, else the CPU."""
    if engine == "vllm":
        return "cuda"
    if "--device" in command[:-1] and command[command.index("--device") + 1] != "auto":
        return command[command.index("--device") + 1]
    return "cuda" if (gpus() if available is None else available) else "cpu"


def _records_dir(paths: Paths) -> Path:
    return paths.sessions_dir


def _record_file(paths: Paths, name: str) -> Path:
    return _records_dir(paths) / f"{name}.json"


def save_record(record: SessionRecord, paths: Paths) -> None:
    target = _record_file(paths, record.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    tmp.replace(target)


def load_records(paths: Paths) -> list[SessionRecord]:
    records = []
    directory = _records_dir(paths)
    if not directory.is_dir():
        return []
    for file in sorted(directory.glob("*.json")):
        try:
            records.append(SessionRecord(**json.loads(file.read_text())))
        except (OSError, ValueError, TypeError):
            file.unlink(missing_ok=True)  # a torn or foreign file is not a session
    return records


def pid_alive(pid: int) -> bool:
    try:
        import psutil

        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except Exception:  # psutil.NoSuchProcess and friends
        return False


def model_listed(record: SessionRecord, timeout: float = 2.0) -> bool:
    try:
        response = httpx.get(f"{record.url}/models", timeout=timeout)
        ids = [m.get("id") for m in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return record.model_id in ids


def session_alive(record: SessionRecord) -> bool:
    """The server runs (its own pid), or, before the supervisor wrote it down, the supervisor does."""
    server = record.server_pid
    return pid_alive(server) if server is not None else pid_alive(record.pid)


def health(record: SessionRecord) -> str:
    """ready | starting (alive, model not listed yet) | dead."""
    if not session_alive(record):
        return "dead"
    return "ready" if model_listed(record) else "starting"


def exit_status(record: SessionRecord) -> dict:
    """How a dead session ended, from its supervisor's exit file: {"returncode", "signal", "ended"}, or {}
    when nothing recorded it (the supervisor itself was killed, or a record from before supervisors)."""
    if not record.exit_file:
        return {}
    try:
        return json.loads(Path(record.exit_file).read_text())
    except (OSError, ValueError):
        return {}


def exit_reason(record: SessionRecord) -> str:
    """'signal 9', 'code 1' or 'status unknown'."""
    status = exit_status(record)
    if status.get("signal"):
        return f"signal {status['signal']}"
    if status.get("returncode") is not None:
        return f"code {status['returncode']}"
    return "status unknown"


def describe_exit(record: SessionRecord) -> str:
    """'exited (signal 9)', 'exited (code 1)' or 'exited (status unknown)'."""
    return f"exited ({exit_reason(record)})"


def all_sessions(paths: Paths | None = None) -> list[tuple[SessionRecord, str]]:
    """Every recorded session with its status: ready, starting, or how it exited (kept until `stop`)."""
    paths = paths or Paths.resolve()
    out = []
    for record in load_records(paths):
        status = health(record)
        out.append((record, describe_exit(record) if status == "dead" else status))
    return out


def live_sessions(paths: Paths | None = None) -> list[tuple[SessionRecord, str]]:
    """The recorded sessions whose server is alive, with their health."""
    return [(record, status) for record, status in all_sessions(paths) if not status.startswith("exited")]


def set_expiry(name: str, seconds: float | None, paths: Paths | None = None) -> float | None:
    """Keep session `name` up for `seconds` more, then stop it (a detached watchdog, supervise.py
    --expire, does); None clears the expiry (it stays up until `stop`). Returns the deadline."""
    paths = paths or Paths.resolve()
    record = next((r for r in load_records(paths) if r.name == name), None)
    if record is None:
        return None
    if seconds is None:
        record.expires, record.keep_alive_s = None, None
        save_record(record, paths)
        return None
    record.expires, record.keep_alive_s = time.time() + seconds, seconds
    save_record(record, paths)
    watchdog = [sys.executable, str(Path(__file__).with_name("supervise.py")), "--expire", str(_record_file(paths, name))]
    subprocess.Popen(watchdog, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return record.expires


def forget(record: SessionRecord, paths: Paths) -> None:
    """Remove a session's record, exit file and pid file (its log stays)."""
    _record_file(paths, record.name).unlink(missing_ok=True)
    if record.exit_file:
        Path(record.exit_file).unlink(missing_ok=True)
        Path(f"{record.exit_file}.pid").unlink(missing_ok=True)


def find_session(ref: ModelRef, paths: Paths | None = None) -> SessionRecord | None:
    """A ready session serving `ref` (by alias/repo/directory), if any."""
    wanted = {ref.text, ref.display}
    if ref.entry:
        wanted |= {ref.entry.alias, ref.entry.repo_id} - {None}
    if ref.local_dir:
        wanted.add(str(ref.local_dir))
    for record, status in live_sessions(paths):
        if status == "ready" and (record.model in wanted or record.path in wanted or record.model_id in wanted):
            return record
    return None


# ---------------------------------------------------------------------------------------------
# Engines live in proverctl.inference.engines (a registry); this module only starts and stops them.


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def gpus() -> list[tuple[str, float]]:
    """(name, memory GiB) of each NVIDIA GPU, from nvidia-smi; [] when there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    result = []
    for line in out.stdout.splitlines():
        if "," in line:
            name, mem = line.rsplit(",", 1)
            try:
                result.append((name.strip(), float(mem) / 1024))
            except ValueError:
                continue
    return result


def check_gpu_memory(ref: ModelRef, weights_bytes: int | None, tensor_parallel_size: int, utilization: float,
                     available: list[tuple[str, float]], *, data_parallel_size: int = 1) -> None:
    """Refuse a model that cannot fit, with the numbers (weights alone must fit in the usable memory of
    one replica's GPUs; data parallelism needs data_parallel_size such groups)."""
    entry = ref.entry
    if weights_bytes is None and entry and entry.parameters_b:
        from proverctl.models.memory import DTYPE_BYTES

        weights_bytes = int(entry.parameters_b * 1e9 * DTYPE_BYTES.get(entry.dtype or "bfloat16", 2))
    if weights_bytes is None:
        return
    need = weights_bytes / GIB
    if available:
        per_gpu = min(mem for _, mem in available)
        usable = per_gpu * utilization * min(tensor_parallel_size, len(available))
        where = f"{min(tensor_parallel_size, len(available))} x {available[0][0]} ({per_gpu:.0f} GiB, {utilization:.0%} usable)"
    else:
        usable, where = 0.0, "no GPU (nvidia-smi found none)"
    if entry is not None and entry.multi_gpu and tensor_parallel_size < 2:
        raise EnvironmentMissing(
            f"{entry.alias} needs about {need:.0f} GiB of GPU memory for its weights alone; one GPU holds at most ~141 GiB",
            hint="serve it across GPUs/nodes with vLLM (--tensor-parallel-size, pipeline parallel) and use `--endpoint URL`",
        )
    if tensor_parallel_size > max(len(available), 1):
        raise EnvironmentMissing(f"--tensor-parallel-size {tensor_parallel_size} but {len(available)} GPU(s) visible",
                                 hint="lower --tensor-parallel-size")
    if data_parallel_size > 1 and data_parallel_size * tensor_parallel_size > len(available):
        raise EnvironmentMissing(f"--data-parallel {data_parallel_size} x --tensor-parallel-size {tensor_parallel_size} needs "
                                 f"{data_parallel_size * tensor_parallel_size} GPUs, {len(available)} visible",
                                 hint="lower --data-parallel (CUDA_VISIBLE_DEVICES chooses the GPUs)")
    if need > usable:
        raise EnvironmentMissing(
            f"not enough GPU memory for {ref.display}: weights need {need:.1f} GiB, {where} gives {usable:.1f} GiB",
            hint="use a smaller model, more GPUs (--tensor-parallel-size), or --engine transformers on CPU",
        )


# ---------------------------------------------------------------------------------------------
# Starting and stopping


def cache_tokens(model_dir: Path) -> int:
    """The KV cache a transformers session gets, in tokens: the `transformers_cache_tokens` setting, but
    no more than two of the model's full contexts (a small model needs no more; its cache stays small)."""
    from proverctl.settings import Settings

    limit = Settings.load().transformers_cache_tokens
    try:
        context = int(json.loads((model_dir / "config.json").read_text()).get("max_position_embeddings") or 0)
    except (OSError, ValueError, TypeError):
        context = 0
    return min(limit, 2 * context) if context else limit


def unique_name(base: str, paths: Paths) -> str:
    """`base`, or `base-2`, ... : a name no live session has (an exited one's record is replaced)."""
    taken = set()
    for record in load_records(paths):
        if session_alive(record):
            taken.add(record.name)
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_session(
    *,
    name: str,
    model: str,
    model_dir: Path,
    engine: str,
    command: list[str],
    model_id: str,
    host: str,
    port: int,
    family: str | None,
    paths: Paths,
) -> tuple[SessionRecord, subprocess.Popen]:
    log = paths.log_dir / f"session-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    exit_file = _records_dir(paths) / f"{name}.exit"
    exit_file.parent.mkdir(parents=True, exist_ok=True)
    exit_file.unlink(missing_ok=True)
    handle = log.open("ab")
    handle.write(f"$ {' '.join(command)}\n".encode())
    handle.flush()
    supervisor = [sys.executable, str(Path(__file__).with_name("supervise.py")), str(exit_file), "--"]
    proc = subprocess.Popen(supervisor + command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=str(paths.state_dir) if paths.state_dir.is_dir() else None)
    handle.close()
    Path(f"{exit_file}.pid").unlink(missing_ok=True)
    record = SessionRecord(name, model, model_id, str(model_dir), engine, host, port, proc.pid, time.time(), str(log), command, family,
                           str(exit_file), device=device_of(engine, command))
    save_record(record, paths)
    return record, proc


def wait_ready(record: SessionRecord, proc: subprocess.Popen, timeout: float, on_tick: Callable[[float], None] | None = None) -> None:
    """Wait until the server lists the model; raise with the log's last lines if it dies or times out."""
    start = time.monotonic()
    while True:
        if proc.poll() is not None:
            stop_process(record.pid)
            raise EnvironmentMissing(
                f"the {record.engine} server exited with {exit_reason(record)} while starting; last log lines:\n{tail(Path(record.log))}",
                hint=f"full log: {record.log}",
            )
        if model_listed(record):
            return
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            stop_process(record.pid)
            raise EnvironmentMissing(
                f"the {record.engine} server did not list the model within {timeout:.0f} s",
                hint=f"read {record.log}; raise --timeout for large models",
            )
        if on_tick:
            on_tick(elapsed)
        time.sleep(0.5)


def stop_process(pid: int, grace: float = 10.0) -> bool:
    """SIGTERM the process group, then SIGKILL what is left; True if something was running."""
    from proverctl.processes import terminate_group

    return terminate_group(pid, grace)


def stop_record(record: SessionRecord, grace: float = 10.0) -> None:
    """End everything of a session: its process group (the supervisor leads it; the group outlives a
    killed supervisor), then the server itself and its descendants should one have left the group, and
    make sure nothing still listens on its port (an error naming the pid that does)."""
    import psutil

    from proverctl.processes import descendants

    stop_process(record.pid, grace)
    server = record.server_pid
    if server is not None and pid_alive(server):
        stray = [psutil.Process(server), *descendants(server)]
        for proc in stray:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(stray, timeout=5)
    deadline = time.monotonic() + 5
    while not port_free(record.host, record.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not port_free(record.host, record.port):
        holder = _listener(record.port)
        raise EnvironmentMissing(f"session {record.name} is stopped, but port {record.port} is still in use"
                                 + (f" by pid {holder}" if holder else ""),
                                 hint=f"`kill {holder}` if it is the old server" if holder else "see `ss -ltnp`")


def _listener(port: int) -> int | None:
    """The pid listening on `port`, where this user may see it."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    except (psutil.Error, OSError):
        pass
    return None


def stop_sessions(selector: str | None, *, everything: bool = False, paths: Paths | None = None,
                  on_stopping: Callable[[SessionRecord], None] | None = None) -> list[SessionRecord]:
    """Stop the session(s) named by `selector` (name, model, port or pid), or all of them;
    `on_stopping(record)` is told before each (a server can take seconds to let go of a GPU)."""
    paths = paths or Paths.resolve()
    records = load_records(paths)
    if everything:
        chosen = records
    else:
        chosen = [r for r in records if selector in (r.name, r.model, str(r.port), str(r.pid), str(r.server_pid), r.model_id)]
        if not chosen:
            names = ", ".join(r.name for r in records) or "none"
            raise UsageError(f"no session named {selector!r}", hint=f"running sessions: {names} (`proverctl ps`)")
    for record in chosen:
        if on_stopping and session_alive(record):
            on_stopping(record)
        try:
            stop_record(record)
        finally:
            forget(record, paths)
    return chosen


def launch(
    ref: ModelRef,
    *,
    engine: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    gpu_memory_utilization: float | None = None,
    tensor_parallel_size: int = 1,
    data_parallel_size: int = 1,
    max_model_len: int | None = None,
    device: str | None = None,
    timeout: float = 900.0,
    name: str | None = None,
    on_started: Callable[[SessionRecord], None] | None = None,
    on_tick: Callable[[float], None] | None = None,
    paths: Paths | None = None,
) -> tuple[SessionRecord, subprocess.Popen]:
    """Start a session for a pulled model and wait until it is ready; every refusal is one ProverctlError.
    On any failure (Ctrl-C included) no process and no record are left behind."""
    from proverctl.models.hub import local_path
    from proverctl.models.memory import weight_bytes_on_disk

    from proverctl.inference import engines

    paths = paths or Paths.resolve()
    available = gpus()
    chosen = engines.get(engine) if engine else engines.default(available)
    if data_parallel_size > 1 and chosen.name != "vllm":
        raise UsageError(f"--data-parallel is vLLM's data parallelism; the {chosen.name} engine has none",
                         hint="use --engine vllm, or one session per device behind `prove --endpoint` repeated")
    executable = chosen.require()
    if chosen.needs_gpu or (ref.entry is not None and ref.entry.multi_gpu):
        # Refuse what cannot fit before asking for the weights (the 671B needs several GPUs).
        weights = None if ref.entry is not None and ref.entry.multi_gpu else weight_bytes_on_disk(local_path(ref))
        check_gpu_memory(ref, weights, tensor_parallel_size, gpu_memory_utilization or 0.9, available,
                         data_parallel_size=data_parallel_size)
    model_dir = local_path(ref)
    if port is None:
        port = free_port(host)
    elif not port_free(host, port):
        raise UsageError(f"port {port} on {host} is in use", hint="choose another --port, or see `proverctl ps`")
    base = ref.entry.alias if ref.entry else model_dir.name
    name = name or unique_name(base, paths)
    options = engines.ServeOptions(host=host, port=port, gpu_memory_utilization=gpu_memory_utilization,
                                   tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                                   max_model_len=max_model_len, device=device,
                                   cache_tokens=cache_tokens(model_dir))
    command = chosen.command(executable, model_dir, base, options)
    record, proc = start_session(
        name=name, model=ref.text, model_dir=model_dir, engine=chosen.name, command=command,
        model_id=chosen.model_id(model_dir, base), host=host, port=port, family=ref.family, paths=paths,
    )
    if on_started:
        on_started(record)
    try:
        wait_ready(record, proc, timeout, on_tick=on_tick)
    except BaseException:
        stop_sessions(record.name, paths=paths)
        raise
    return record, proc
