"""The REPL client and pool on real processes: the stand-in REPL (tests/standin_repl.py) speaking the
real protocol, replaying real transcripts, and misbehaving on request."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import psutil
import pytest

from conftest import STANDIN, standin_argv
from proverctl.lean.checker import check_candidate
from proverctl.lean.pool import CheckJob, ReplPool, default_workers
from proverctl.lean.protocol import split_responses, split_transcript_requests
from proverctl.lean.reading import lean_string
from proverctl.lean.repl import ReplProcess, ReplStartError
from proverctl.lean.verdict import VerdictKind

TESTS = Path(__file__).parent
HEADER = "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real Nat Topology Rat\n\n"
GOOD = "theorem t (x : ℕ) : x + 0 = x := by\n  simp\n"


def standin(*args: str) -> list[str]:
    return standin_argv(*args)


def run(coro):
    return asyncio.run(coro)


def logged(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("name", ["readme", "have_by_sorry", "options", "dup_sorries", "unknown_environment", "file_env"])
def test_client_reads_real_transcripts_byte_for_byte(name):
    base = TESTS / "fixtures" / "repl" / "test" / name
    requests = split_transcript_requests(base.with_suffix(".in").read_text())
    expected = split_responses(base.with_suffix(".expected.out").read_text())

    async def go():
        repl = ReplProcess(standin("--transcript", str(base)), cwd=TESTS / "fixtures" / "repl")
        await repl.start()
        try:
            return [await repl.request(r, 30) for r in requests]
        finally:
            await repl.close()

    got = run(go())
    assert [g.raw for g in got] == [e.raw for e in expected]


def test_header_sent_once_per_worker_and_reused(tmp_path):
    log = tmp_path / "requests.jsonl"

    async def go():
        async with ReplPool(standin("--log", str(log)), workers=1) as pool:
            return [await check_candidate(pool, header=HEADER, code=GOOD, target_name="t") for _ in range(5)]

    verdicts = run(go())
    assert all(v.kind is VerdictKind.proved for v in verdicts), [v.reasons for v in verdicts]
    requests = logged(log)
    assert requests[0] == {"cmd": "import Mathlib\nimport Aesop\n"}
    assert requests[1]["env"] == 0 and requests[1]["cmd"].startswith("\nset_option maxHeartbeats")
    rest = requests[2:]
    readings = [r for r in rest if "run_cmd do" in r["cmd"]]
    checks = [r for r in rest if "run_cmd do" not in r["cmd"]]
    # Lean's own reading: one probe of the header, then one reading of each candidate before its check.
    assert "proverctl_reader_probe" in readings[0]["cmd"] and len(readings) == 6 and all(r["env"] == 1 for r in readings)
    assert all(lean_string(GOOD) in r["cmd"] for r in readings[1:])
    assert len(checks) == 5 and all(r["env"] == 1 for r in checks)
    # Our own lines after the candidate: this check's marker, then the audit with the exact name.
    assert re.fullmatch(re.escape(GOOD) + r'\n#print "proverctl-check-[0-9a-f]{16}"\n#print axioms _root_\.t\n', checks[0]["cmd"])
    assert len({r["cmd"] for r in checks}) == 5  # a fresh marker per check


def test_policy_rejects_without_asking_lean(tmp_path):
    log = tmp_path / "requests.jsonl"

    async def go():
        async with ReplPool(standin("--log", str(log))) as pool:
            return await check_candidate(pool, header=HEADER, code="theorem t : True := by\n  sorry\n", target_name="t")

    verdict = run(go())
    assert verdict.kind is VerdictKind.rejected and verdict.reasons == ["uses `sorry` (line 2)"]
    assert logged(log) == []


def test_lean_error_is_rejected_and_header_error_is_an_error():
    async def go():
        async with ReplPool(standin("--reject", "linarith")) as pool:
            bad = await check_candidate(pool, header=HEADER, code="theorem t : 1 = 2 := by\n  linarith\n", target_name="t")
        async with ReplPool(standin("--reject", "^import")) as pool:
            broken = await check_candidate(pool, header=HEADER, code=GOOD, target_name="t")
        return bad, broken

    bad, broken = run(go())
    assert bad.kind is VerdictKind.rejected and bad.reasons[0].startswith("Lean error at line 2: unsolved goals")
    assert broken.kind is VerdictKind.error and "header does not elaborate" in broken.reasons[0]


def test_timeout_kills_the_process_group_and_the_next_check_restarts():
    # bash stays the parent of the stand-in: killing only the leader would leave python running.
    command = ["bash", "-c", f"'{sys.executable}' '{STANDIN}' --hang-on HANG; true"]

    async def go():
        async with ReplPool(command, workers=1) as pool:
            task = asyncio.create_task(check_candidate(pool, header="", code="theorem t : True := by\n  HANG\n", target_name="t", timeout=2))
            pids = []
            for _ in range(200):
                await asyncio.sleep(0.05)
                if pool.pids():
                    leader = psutil.Process(pool.pids()[0])
                    pids = [leader.pid] + [c.pid for c in leader.children(recursive=True)]
                    if len(pids) >= 2:
                        break
            hung = await task
            after = alive(pids)
            ok = await check_candidate(pool, header="", code=GOOD, target_name="t")
            return hung, pids, after, ok, pool.started

    hung, pids, after, ok, started = run(go())
    assert hung.kind is VerdictKind.timeout and "no answer within 2 s" in hung.reasons[0]
    assert len(pids) >= 2 and after == []
    assert ok.kind is VerdictKind.proved and started == 2


@pytest.mark.parametrize(
    "flag, marker, detail",
    [
        ("--crash-on", "CRASH", "uncaught exception"),
        ("--garbage-on", "GARBAGE", "not a response"),
        ("--grow-on", "GROW", "out of memory"),
    ],
)
def test_repl_failures_are_errors_never_rejections(flag, marker, detail):
    async def go():
        async with ReplPool(standin(flag, marker), workers=1, memory_mb=300) as pool:
            failed = await check_candidate(pool, header="", code=f"theorem t : True := by\n  {marker}\n", target_name="t", timeout=60)
            recovered = await check_candidate(pool, header="", code=GOOD, target_name="t")
            return failed, recovered, pool.pids()

    failed, recovered, pids = run(go())
    assert failed.kind is VerdictKind.error, failed
    assert detail in failed.reasons[0]
    assert recovered.kind is VerdictKind.proved
    assert alive(pids) == []


def test_workers_are_recycled_after_max_uses():
    async def go():
        async with ReplPool(standin(), workers=1, max_uses=3) as pool:
            for _ in range(7):
                assert (await check_candidate(pool, header="", code=GOOD, target_name="t")).proved
            return pool.started, pool.checks

    started, requests = run(go())
    # Every request counts as a use (Lean's reading of a candidate as well as its check): a fresh REPL
    # takes the header (not a use) and at most 3 requests.
    assert requests == 2 + 7 * 2 and started == -(-requests // 3)


def test_a_hung_check_does_not_block_the_other_workers():
    async def go():
        async with ReplPool(standin("--hang-on", "HANG"), workers=2) as pool:
            jobs = [check_candidate(pool, header="", code="theorem t : True := by\n  HANG\n", target_name="t", timeout=5)]
            jobs += [check_candidate(pool, header="", code=GOOD, target_name="t") for _ in range(4)]
            order = []
            for done in asyncio.as_completed([asyncio.ensure_future(j) for j in jobs]):
                order.append((await done).kind)
            return order

    order = run(go())
    assert order[:4] == [VerdictKind.proved] * 4 and order[4] is VerdictKind.timeout


def test_close_leaves_no_process_behind():
    async def go():
        pool = ReplPool(standin(), workers=3)
        await asyncio.gather(*(check_candidate(pool, header="", code=GOOD, target_name="t") for _ in range(6)))
        pids = pool.pids()
        await pool.close()
        return pids

    pids = run(go())
    assert len(pids) == 3 and alive(pids) == []


def test_missing_repl_command_raises_start_error():
    async def go():
        async with ReplPool(["/nonexistent/repl"]) as pool:
            await pool.check(CheckJob("", "", GOOD))

    with pytest.raises(ReplStartError):
        run(go())


@pytest.mark.parametrize("program", ["no-such-repl-anywhere", "./no-such-repl"])
def test_a_missing_program_is_a_start_error_under_the_memory_cap_too(program, tmp_path):
    async def go():
        async with ReplPool([program], cwd=tmp_path, memory_mb=512) as pool:
            await pool.check(CheckJob("", "", GOOD))

    with pytest.raises(ReplStartError, match="cannot start the Lean REPL"):
        run(go())


def test_the_memory_cap_is_the_address_space_limit_of_the_program_itself(tmp_path):
    """The cap (set by `sh`, which then execs the program: no preexec_fn, see proverctl.processes) is the
    program's RLIMIT_AS, soft and hard, and the program keeps the pid it was started with; a relative
    program path is found from the working directory."""
    from proverctl import processes
    from proverctl.lean.sandbox import Launch

    script = tmp_path / "limits.py"
    script.write_text("#!" + sys.executable + "\nimport os, resource\nprint(os.getpid(), *resource.getrlimit(resource.RLIMIT_AS))\n")
    script.chmod(0o755)

    async def go(memory_mb, argv):
        proc = await processes.start(Launch(argv, {}, str(tmp_path)), memory_mb=memory_mb, stdin=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        return proc.pid, out.decode().split()

    pid, (child, soft, hard) = run(go(300, ["./limits.py"]))
    assert int(child) == pid and int(soft) == int(hard) == 300 * 1024 * 1024
    _, (_, soft, hard) = run(go(None, [sys.executable, str(script)]))
    assert int(soft) != 300 * 1024 * 1024
    assert processes.capped(["x", "--flag"], None) == ["x", "--flag"]
    assert processes.capped(["x"], 1 << 44) == ["x"]  # past any address space: no cap (sh would make it 0)
    # A script whose #! interpreter is missing is a start error, as exec's ENOENT was.
    orphan = tmp_path / "orphan"
    orphan.write_text("#!/nonexistent/interpreter\n")
    orphan.chmod(0o755)
    with pytest.raises(FileNotFoundError, match="no such interpreter"):
        processes.capped([str(orphan)], 300)


def test_unknown_environment_answer_is_an_error():
    async def go():
        repl = ReplProcess(standin())
        await repl.start()
        try:
            return await repl.request({"cmd": GOOD, "env": 7}, 10)
        finally:
            await repl.close()

    assert run(go()).error == "Unknown environment."


def test_default_workers_is_bounded_by_cores_and_memory():
    assert default_workers(8192) >= 1
    assert default_workers(10**9) == 1


@pytest.mark.parametrize("framing", ["unframed", "compact"])
def test_answers_without_the_blank_line_are_read_at_once(framing):
    """A REPL that leaves out the blank line after an answer (a build whose output is cut short of it)
    is answered as soon as the object is complete, not after a timeout."""
    async def go():
        async with ReplPool(standin("--framing", framing), workers=1, header_timeout=5) as pool:
            first = await check_candidate(pool, header=HEADER, code=GOOD, target_name="t", timeout=5)
            second = await check_candidate(pool, header=HEADER, code=GOOD, target_name="t", timeout=5)
            return first, second, pool.started

    first, second, started = run(go())
    assert first.kind is VerdictKind.proved and second.kind is VerdictKind.proved and started == 1


def test_a_header_that_never_loads_is_an_error_bounded_by_the_import_timeout():
    async def go():
        async with ReplPool(standin("--hang-on", "^import"), workers=1, header_timeout=1.5) as pool:
            started = asyncio.get_running_loop().time()
            verdict = await check_candidate(pool, header=HEADER, code=GOOD, target_name="t", timeout=60)
            return verdict, asyncio.get_running_loop().time() - started

    verdict, seconds = run(go())
    assert verdict.kind is VerdictKind.error and "the header (imports) did not load" in verdict.reasons[0]
    assert "PROVERCTL_IMPORT_TIMEOUT" in verdict.reasons[0] and seconds < 30


def test_a_forged_answer_is_not_this_checks_and_the_worker_is_retired():
    """A candidate that prints a clean answer on stdout before the REPL's own (the stand-in's --forge-on)
    gets `error`, not `proved`; the worker is retired, so the real answer left in the pipe cannot be
    read as the next check's."""
    async def go():
        async with ReplPool(standin("--forge-on", "simp_all", "--reject", "simp_all"), workers=1) as pool:
            forged = await check_candidate(pool, header=HEADER, code=GOOD.replace("simp", "simp_all"), target_name="t")
            after = await check_candidate(pool, header=HEADER, code=GOOD, target_name="t")
            return forged, after, pool.retired, pool.started

    forged, after, retired, started = run(go())
    assert forged.kind is VerdictKind.error and "marker is missing" in forged.reasons[0]
    assert after.kind is VerdictKind.proved and retired == 1 and started == 2


def _read_all(data: bytes, count: int, seed: int, sizes=(1, 2, 3, 7, 64, 4096), returncode: int = 0) -> list:
    """`count` answers read by ReplProcess from `data` given to its stdout's protocol in pieces of random
    sizes (a piece may end mid-line, mid-character or hold the next answer's start), as the event loop
    gives a pipe's reads; the output's end after them must be a crash (ReplCrashed, with the exit code)."""
    import random
    from types import SimpleNamespace

    from proverctl.lean.repl import ReplCrashed

    async def go():
        rnd = random.Random(seed)
        repl = ReplProcess(["unused"])

        async def wait():
            return 0

        repl.proc = SimpleNamespace(returncode=returncode, wait=wait)
        at = 0
        while at < len(data):
            size = rnd.choice(sizes)
            repl._stdout.data_received(data[at:at + size])
            at += size
        repl._stdout.eof_received()
        got = []
        for _ in range(count):
            raw, parsed = await repl._next_response(5)
            got.append(json.loads(raw) if parsed is None else parsed)
        with pytest.raises(ReplCrashed, match=f"code {returncode}"):
            await repl._next_response(5)
        return got

    return run(go())


@pytest.mark.parametrize("name", ["readme", "file_env", "options"])
def test_responses_are_read_whatever_pieces_stdout_gives_them_in(name):
    """A real transcript's answers, fed in pieces of random sizes, are read one by one as the REPL wrote
    them; the end of the output after the last is a crash."""
    base = TESTS / "fixtures" / "repl" / "test" / name
    data = base.with_suffix(".expected.out").read_bytes()
    expected = [r.raw for r in split_responses(data.decode())]
    for seed in range(12):
        assert _read_all(data, len(expected), seed) == expected


def test_answers_without_the_blank_line_end_where_their_object_closes_in_any_pieces():
    """A REPL that leaves out the blank line (`--framing unframed`/`compact` in the stand-in) or writes
    CRLF: an answer ends at a line that closes its object (a `}` at column 0, or a whole one-line object)
    when the text so far parses, and a `}` line that closes an inner object (`indent=0`) is not the end.
    The last answer ends with the output, without a newline."""
    answers = [{"env": 0}, {"env": 1, "messages": [{"severity": "info", "data": "\n}\n"}]}, {"env": 2, "messages": []}, {"env": 3}]
    data = ("\n \t\n" + json.dumps(answers[0]) + "\n" + json.dumps(answers[1], indent=0) + "\n"
            + (json.dumps(answers[2], indent=2) + "\n\n").replace("\n", "\r\n") + json.dumps(answers[3], indent=1)).encode()
    for seed in range(8):
        assert _read_all(data, len(answers), seed, sizes=(1, 2, 5, 64)) == answers


def test_a_repl_that_exits_mid_answer_after_a_newline_is_a_crash_not_garbage():
    """The output ends inside an answer, right after a newline: the REPL died (ReplCrashed, with its exit
    code), and the newline it ended with is no blank line that would end the answer."""
    for seed in range(4):
        assert _read_all(b'{"env": 0}\n\n{\n "env": 1,\n', 1, seed, returncode=137) == [{"env": 0}]


def test_an_answer_that_comes_in_pieces_while_the_request_waits_wakes_it_once_whole():
    """The request waits on stdout's protocol: pieces that do not end the answer leave it waiting, the one
    that does hands it the answer; with nothing more it times out at its deadline."""
    async def go():
        repl = ReplProcess(["unused"])
        waiting = asyncio.ensure_future(repl._next_response(5))
        for piece in (b'{"env":', b' 7,\n "messages"', b': []\n}'):
            repl._stdout.data_received(piece)
            await asyncio.sleep(0)
            assert not waiting.done()
        repl._stdout.data_received(b"\n\n")
        raw, _ = await waiting
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await repl._next_response(0.2)
        return json.loads(raw), loop.time() - started, repl._stdout.waiter

    answer, waited, waiter = run(go())
    assert answer == {"env": 7, "messages": []} and 0.15 < waited < 5 and waiter is None


def test_output_past_the_size_limit_without_an_end_is_garbage_and_ends_the_process(monkeypatch):
    """A REPL that prints more than MAX_RESPONSE_BYTES without ending its answer: the request fails as a
    protocol error and the process is killed, never left half read."""
    from proverctl.lean import repl as repl_module

    monkeypatch.setattr(repl_module, "MAX_RESPONSE_BYTES", 1000)

    async def go():
        repl = ReplProcess(["unused"])
        killed = []

        async def kill():
            killed.append(True)

        repl.kill = kill
        waiting = asyncio.ensure_future(repl._next_response(5))
        await asyncio.sleep(0)
        repl._stdout.data_received(b'{"env": 0, "messages": [' + b'{"data": "x"},\n' * 100)
        with pytest.raises(repl_module.ReplProtocolError, match="without ending its answer"):
            await waiting
        return killed

    assert run(go()) == [True]


def test_answers_nobody_asked_for_pause_reading_until_a_request_takes_one():
    """A candidate's leftover thread printing answers without end (`--spew-on`): once one is queued with no
    request waiting, stdout is not read on (the REPL blocks on its full pipe), so the queue stops growing
    (it grew with the REPL's output, to gigabytes, when every answer was read and queued); taking the
    queued answers lets reading go on."""
    async def go():
        repl = ReplProcess(standin("--spew-on", "spew"))
        await repl.start()
        try:
            answer = await repl.request({"cmd": "theorem spew : True := trivial"}, 10)
            await asyncio.sleep(0.5)
            queued = len(repl._stdout.answers)
            await asyncio.sleep(0.5)
            steady = len(repl._stdout.answers)
            reading = repl._stdout.transport.is_reading()
            while repl._stdout.answers:
                repl._stdout.take()
            resumed = repl._stdout.transport.is_reading()
            await asyncio.sleep(0.3)
            return answer, queued, steady, reading, resumed, len(repl._stdout.answers), repl._stdout.transport.is_reading()
        finally:
            await repl.close()

    answer, queued, steady, reading, resumed, again, reading_again = run(go())
    assert answer.env is not None and not answer.errors
    # at most what one read of the pipe (asyncio reads 256 KiB at a time) cuts into 11-byte answers
    assert 0 < queued == steady <= 256 * 1024 // 11 and not reading
    assert resumed and again > 0 and not reading_again


async def _cancelled_while_checking(pool: ReplPool, code: str) -> None:
    """Start a check of `code` on `pool`, cancel it while the REPL works on it, see it cancelled."""
    check = asyncio.ensure_future(pool.check(CheckJob("", "", code)))
    await asyncio.sleep(0.3)
    check.cancel()
    with pytest.raises(asyncio.CancelledError):
        await check


def test_a_cancelled_checks_answer_is_read_off_before_the_next_check_on_the_same_process():
    """A check cancelled while the REPL works on it (an early stop, Ctrl-C) leaves an answer to come: the
    worker's next check reads it off first, so it gets its own answer (not the cancelled one's, with its
    sorry), on the same process with its headers loaded."""
    async def go():
        async with ReplPool(standin("--slow-on", "slow"), workers=1) as pool:
            await _cancelled_while_checking(pool, "theorem slow : 1 = 1 := by\n  sorry\n")
            owed = pool._workers[0].repl.owed
            outcome = await pool.check(CheckJob("", "", GOOD))
            return owed, outcome, pool.started, pool._workers[0].repl.owed

    owed, outcome, started, owed_after = run(go())
    assert owed == 1 and owed_after == 0 and started == 1
    assert outcome.status == "ok" and not outcome.response.sorries and not outcome.response.errors


def test_a_cancelled_check_that_never_answers_costs_the_next_check_a_fresh_process_not_a_verdict():
    """The cancelled check's command hangs: reading its answer off times out at the next job's timeout,
    the process is ended, and the next check runs on a fresh one as usual (ok, not a timeout)."""
    async def go():
        async with ReplPool(standin("--hang-on", "hang"), workers=1) as pool:
            await _cancelled_while_checking(pool, "theorem hang : True := trivial\n")
            old = pool.pids()
            outcome = await pool.check(CheckJob("", "", GOOD, timeout=0.5))
            return old, outcome, pool.started, pool.pids()

    old, outcome, started, now = run(go())
    assert outcome.status == "ok" and not outcome.response.errors and started == 2
    assert alive(old) == [] and now != old


def test_a_start_that_fails_after_the_spawn_leaves_no_process_behind(monkeypatch, tmp_path):
    """Connecting the REPL's stdout fails (or is cancelled) after the process exists: the process group is
    ended before the error goes on, never left half started. (Here the event loop refuses the file it is
    given, a regular file in place of the pipe's read end.)"""
    import os

    def not_a_pipe(fd, *args, **kwargs):
        os.close(fd)
        return open(tmp_path / "not-a-pipe", "wb+", buffering=0)

    monkeypatch.setattr(os, "fdopen", not_a_pipe)

    async def go():
        repl = ReplProcess([sys.executable, "-c", "import time; time.sleep(60)"])
        with pytest.raises(ValueError, match="[Pp]ipe"):
            await asyncio.wait_for(repl.start(), 30)
        return repl.proc.pid, repl.proc.returncode

    pid, returncode = run(go())
    assert returncode is not None and alive([pid]) == []


def test_an_overflow_keeps_the_answers_the_same_read_completed(monkeypatch):
    """Answers cut from a read are kept even when the same read leaves the next answer past the size
    limit: the request waiting gets its answer, the one after gets the protocol error."""
    from proverctl.lean import repl as repl_module

    monkeypatch.setattr(repl_module, "MAX_RESPONSE_BYTES", 1000)

    async def go():
        repl = ReplProcess(["unused"])

        async def kill():
            pass

        repl.kill = kill
        repl._stdout.data_received(b'{"env": 3}\n\n{"env": 4, "messages": [' + b'{"data": "x"},\n' * 100)
        raw, data = await repl._next_response(5)
        with pytest.raises(repl_module.ReplProtocolError, match="without ending its answer"):
            await repl._next_response(5)
        return data if data is not None else json.loads(raw)

    assert run(go()) == {"env": 3}


def test_an_answer_nested_past_the_decoders_depth_is_garbage_not_a_crash_of_the_run(tmp_path):
    """JSON nested deeper than msgspec and json can decode (both raise RecursionError) is not JSON: a
    REPL answering it is a protocol error for that check, never an exception out of the run."""
    from proverctl.lean.protocol import decode_json
    from proverctl.lean.repl import ReplProtocolError

    deep = b'{"env": 0, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_json(deep)

    async def go():
        (tmp_path / "answer").write_bytes(deep + b"\n\n")
        repl = ReplProcess([sys.executable, "-c", "import sys; sys.stdin.readline(); sys.stdout.write(open(sys.argv[1]).read()); sys.stdout.flush(); sys.stdin.read()",
                            str(tmp_path / "answer")])
        await repl.start()
        try:
            with pytest.raises(ReplProtocolError, match="not a response"):
                await repl.request({"cmd": "example : True := trivial"}, 10)
            return repl.alive
        finally:
            await repl.close()

    assert run(go()) is False
