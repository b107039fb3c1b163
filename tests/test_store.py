"""The attempt store where its behaviour lives: migrations from a blank file and from the previous
schema, concurrent writers in separate processes, and the queries `runs`/`show`/`bench`/the TUI use."""

from __future__ import annotations

import json
import sqlite3

import pytest

from proverctl.store import db as store_db
from proverctl.store.db import MIGRATIONS, AttemptRow, Store, StoredPrompt, StoreError

TARGET = {"file": "F.lean", "name": "t", "kind": "theorem", "line": 3, "statement": "theorem t : True :=", "doc": None,
          "header": "import Mathlib\n", "header_hash": "h"}


def new_run(store: Store, **extra) -> int:
    return store.create_run(kind="prove", command="proverctl prove F.lean", input="F.lean", model="m", revision=None, engine="vllm",
                            endpoint=None, lean_profile="deepseek-v2", settings={"k": 2}, **extra)


def columns(path, table: str) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    finally:
        db.close()


def old_store(path, versions: int) -> sqlite3.Connection:
    """A store file as a release that knew only the first `versions` migrations left it (open connection)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)")
    for step in MIGRATIONS[:versions]:
        step.apply(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, 0)", (step.version,))
    return db


@pytest.mark.parametrize("step", MIGRATIONS[1:], ids=lambda m: f"{m.version}-{m.name}")
def test_each_migration_from_the_schema_before_it(tmp_path, step):
    """A store as the release before `step` left it, with a run, a target and an attempt in it, opens:
    the migration adds what it says, and the rows are still there."""
    path = tmp_path / "old.db"
    db = old_store(path, step.version - 1)
    db.execute("INSERT INTO runs (started, command, input, settings) VALUES (1, 'proverctl prove F.lean', 'F.lean', '{}')")
    db.execute("INSERT INTO targets (run_id, ordinal, file, statement, header, header_hash) VALUES (1, 0, 'F.lean', 's', '', 'h')")
    db.execute("INSERT INTO attempts (target_id, sample, verdict, created) VALUES (1, 0, 'rejected', 1)")
    db.close()
    for added in step.adds:
        table, _, column = added.partition(".")
        assert (column not in columns(path, table)) if column else not columns(path, table)
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.run(1)["input"] == "F.lean" and store.target(1)["statement"] == "s"
        assert [a["verdict"] for a in store.attempts(1)] == ["rejected"]
    for added in step.adds:
        table, _, column = added.partition(".")
        assert column in columns(path, table) if column else columns(path, table)


def test_migrations_have_names_and_one_number_each():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len({m.name for m in MIGRATIONS}) == len(MIGRATIONS) and all(m.adds for m in MIGRATIONS)


def test_a_blank_file_gets_every_migration(tmp_path):
    with Store(tmp_path / "s.db") as store:
        assert store.schema_version == len(MIGRATIONS) == 11
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert {"request", "served_model", "engine_version"} <= columns(tmp_path / "s.db", "runs")
    assert {"finish_reason", "seed", "kind", "judge"} <= columns(tmp_path / "s.db", "attempts")
    assert {"hint", "statement_key"} <= columns(tmp_path / "s.db", "targets")


def test_the_previous_schema_migrates_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    db = old_store(path, 2)  # the schema of the release before requests were stored
    db.execute("INSERT INTO runs (started, command, input, settings) VALUES (1, 'proverctl prove F.lean', 'F.lean', ?)",
               (json.dumps({"k": 4, "mode": "non-cot", "rounds": 1, "all": False, "seed": 3, "allow_aux": False, "timeout": 30}),))
    db.execute("INSERT INTO targets (run_id, ordinal, file, statement, header, header_hash) VALUES (1, 0, 'F.lean', 's', '', 'h')")
    db.execute("INSERT INTO attempts (target_id, sample, verdict, created) VALUES (1, 0, 'rejected', 1)")
    db.close()
    assert "request" not in columns(path, "runs")
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.target(1)["hint"] is None  # targets from before hints have none
        from proverctl.lean.targets import statement_key

        assert store.target(1)["statement_key"] == statement_key("s", "h")  # keyed when the column came
        run = store.run(1)
        assert run["request"] is None and run["command"] == "proverctl prove F.lean"
        assert store.attempts(1)[0]["finish_reason"] is None and store.attempts(1)[0]["verdict"] == "rejected"
        from proverctl.proving.job import stored_request

        request = stored_request(run)  # an old run still resumes, with the request its settings describe
        assert (request.k, request.mode, request.rounds, request.seed, request.timeout) == (4, "non-cot", 1, 3, 30)


def test_a_newer_schema_and_a_read_only_store_needing_migration_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    with Store(path) as store:
        store.db.execute("INSERT INTO schema_migrations (version, applied) VALUES (99, 0)")
    with pytest.raises(StoreError, match="written by a newer proverctl"):
        Store(path)
    old = tmp_path / "old.db"
    old_store(old, 1).close()
    monkeypatch.setattr("proverctl.store.db.os.access", lambda path, mode: False)  # a file this user may not write
    with pytest.raises(StoreError, match="needs a migration"):
        Store(old, readonly=True)


WRITER = """
import sys
sys.path.insert(0, {root!r})
from proverctl.store.db import AttemptRow, Store
with Store({path!r}) as store:
    (target_id,) = store.add_targets({run_id}, [dict({target!r}, name="w{worker}")])
    for sample in range({count}):
        store.add_attempt(AttemptRow(target_id, sample, 0, {{"p": 1}}, "out", None, "rejected", ["r"], [], seed=sample))
"""


def test_concurrent_writers_in_separate_processes_lose_nothing(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "s.db"
    with Store(path) as store:
        run_id = new_run(store)
    root = str(Path(__file__).resolve().parent.parent)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER.format(root=root, path=str(path), run_id=run_id, target=TARGET, worker=w,
                                                                    count=40)]) for w in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with Store(path) as store:
        counts = store.sample_counts(run_id)
        assert sorted(n for _, n, _ in counts) == [40, 40, 40]
        assert sorted(t["ordinal"] for t in store.targets(run_id)) == [0, 1, 2]  # ordinals stay unique under contention


def test_the_queries_the_cli_and_tui_use(tmp_path):
    with Store(tmp_path / "s.db") as store:
        run_id = new_run(store, request='{"version": 1, "request": {}}', served_model="org/m", engine_version="0.9.1")
        t1, t2 = store.add_targets(run_id, [TARGET, dict(TARGET, name="u", line=9)])
        (sub,) = store.add_targets(run_id, [dict(TARGET, name="u_sub")], parent_id=t2)
        store.add_attempt(AttemptRow(t1, 0, 0, None, "o", "c1", "rejected", ["bad"], [{"severity": "error", "data": "x"}]))
        proved = store.add_attempt(AttemptRow(t1, 1, 0, None, "o", "c2", "proved", [], [], finish_reason="stop", seed=7), proved=True)
        store.add_attempt(AttemptRow(t1, 1, 1, None, "o", "c3", "proved", [], []), proved=True)  # a second proof keeps the first
        store.add_attempt(AttemptRow(t2, 0, 0, None, "o", None, "timeout", ["slow"], []))
        store.add_attempt(AttemptRow(t2, 1000, 0, None, "sketch", None, "sketch", [], [], kind="sketch"))
        store.add_attempt(AttemptRow(sub, 0, 0, None, "o", None, "error", ["repl died"], []))
        targets = {t["name"]: t for t in store.targets(run_id)}
        assert targets["t"]["status"] == "proved" and targets["t"]["proved_attempt"] == proved and targets["t"]["best"] == "proved"
        assert targets["u"]["best"] == "timeout" and targets["u_sub"]["best"] == "error" and targets["u_sub"]["parent_id"] == t2
        assert [t["name"] for t in store.targets(run_id, status="proved")] == ["t"]
        # pass@k counts proof samples of top-level targets only (sketches and subgoals are not samples)
        assert store.sample_counts(run_id) == [(t1, 2, 1), (t2, 1, 0)]
        assert store.verdicts(run_id) == {"rejected", "proved", "timeout", "sketch", "error"}
        assert [a["id"] for a in store.attempts(t1, verdict="proved")] == [proved, proved + 1]
        assert [a["code"] for a in store.attempts(t1, search="c1")] == ["c1"]
        assert store.attempts(t1)[0]["messages"] == [{"severity": "error", "data": "x"}]  # JSON columns come back decoded
        assert store.attempt(proved)["seed"] == 7 and store.attempt(proved)["finish_reason"] == "stop"
        assert store.attempt_index(t1) == [(proved - 1, "rejected"), (proved, "proved"), (proved + 1, "proved")]
        assert store.done_samples(t1) == {(0, 0), (1, 0), (1, 1)}
        assert store.find_target(run_id, "u")["id"] == t2 and store.find_target(run_id, "1")["id"] == t2
        (summary,) = store.runs()
        assert (summary["n_targets"], summary["n_proved"], summary["served_model"], summary["engine_version"]) == (2, 1, "org/m", "0.9.1")
        exported = list(store.iter_attempts(run_id))
        assert len(exported) == 6 and exported[0]["target_name"] == "t"
        store.finish_run(run_id, "finished")
        assert store.run(run_id)["status"] == "finished" and store.run(run_id)["finished"] is not None


def test_a_write_that_cannot_happen_is_a_store_error_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    with Store(path) as store:
        run_id = new_run(store)
        (target_id,) = store.add_targets(run_id, [TARGET])
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 100)
    holder = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store(path) as store:
            store.db.execute("PRAGMA busy_timeout = 100")
            with pytest.raises(StoreError, match="locked by another process"):
                store.add_attempt(AttemptRow(target_id, 0, 0, None, "o", None, "rejected", [], []), proved=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Store(path) as store:
        assert store.attempts(target_id) == []


def test_prompts_are_stored_once_per_target_and_read_back_with_each_attempt(tmp_path):
    with Store(tmp_path / "s.db") as store:
        run_id = new_run(store)
        (target_id,) = store.add_targets(run_id, [TARGET])
        prompt = {"family": "deepseek-v2", "messages": [{"role": "user", "content": "Complete ..." * 200}]}
        feedback = {"family": "deepseek-v2", "messages": prompt["messages"] + [{"role": "user", "content": "fix it"}]}
        for sample in range(10):
            # A run hands the prompt over stored once (StoredPrompt); it is the same row as the JSON value's.
            stored = StoredPrompt.of(prompt) if sample % 2 else prompt
            store.add_attempt(AttemptRow(target_id, sample, 0, stored, "out", None, "rejected", ["r"], []))
        store.add_attempt(AttemptRow(target_id, 0, 1, feedback, "out", None, "rejected", ["r"], []))
        assert store.db.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 2
        assert store.db.execute("SELECT COUNT(*) FROM attempts WHERE prompt IS NOT NULL").fetchone()[0] == 0
        attempts = store.attempts(target_id)
        assert [a["prompt"] for a in attempts] == [prompt, feedback] + [prompt] * 9 or all(a["prompt"] in (prompt, feedback) for a in attempts)
        assert store.attempt(attempts[-1]["id"])["prompt"] == prompt and "prompt_id" not in attempts[0]
        lines = [json.loads(line) for line in store.iter_attempt_lines(run_id)]
        decoded = list(store.iter_attempts(run_id))
        # The export SQLite writes is the same data, field for field (timestamps to SQLite's 15 significant digits,
        # so compared within a millisecond: rounding both sides could still split a value lying on a rounding edge).
        assert [{**x, "created": None} for x in lines] == [{**x, "created": None} for x in decoded]
        assert all(abs(a["created"] - b["created"]) < 1e-3 for a, b in zip(lines, decoded, strict=True))


def test_schema_4_prompts_move_to_the_prompts_table(tmp_path):
    path = tmp_path / "old.db"
    db = old_store(path, 4)
    db.execute("INSERT INTO runs (started, command, input) VALUES (1, 'c', 'F.lean')")
    db.execute("INSERT INTO targets (run_id, ordinal, file, statement, header, header_hash) VALUES (1, 0, 'F.lean', 's', '', 'h')")
    for sample in range(3):
        db.execute("INSERT INTO attempts (target_id, sample, verdict, created, prompt) VALUES (1, ?, 'rejected', 1, ?)",
                   (sample, json.dumps({"text": "same prompt"})))
    db.close()
    with Store(path) as store:
        assert store.db.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 1
        assert [a["prompt"] for a in store.attempts(1)] == [{"text": "same prompt"}] * 3
        store.add_attempt(AttemptRow(1, 3, 0, {"text": "same prompt"}, "o", None, "rejected", [], []))
        assert store.db.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 2  # a migrated row has no digest to match; harmless


def test_export_writes_json_lines_by_default_an_array_when_asked_and_nothing_when_quiet(cli, hermetic):
    with Store(hermetic / "proverctl" / "data" / "attempts.sqlite3") as store:
        run_id = new_run(store)
        (target_id,) = store.add_targets(run_id, [TARGET])
        for sample in range(3):
            store.add_attempt(AttemptRow(target_id, sample, 0, {"p": 1}, f"out {sample}", "code", "rejected", ["r"], [], judge="repl"))
    lines = cli("export", str(run_id)).stdout.splitlines()  # CliRunner's stdout is a pipe: still JSON lines
    assert [json.loads(line)["raw_output"] for line in lines] == ["out 0", "out 1", "out 2"]
    assert json.loads(lines[0])["prompt"] == {"p": 1} and json.loads(lines[0])["judge"] == "repl"
    array = cli("export", str(run_id), "--format", "json").json()
    assert [row["sample"] for row in array] == [0, 1, 2]
    assert cli("export", str(run_id), "--format", "quiet").stdout == ""
    assert cli("export", "99").exit_code == 2


def test_a_reader_after_an_upgrade_migrates_a_writable_store(tmp_path):
    path = tmp_path / "old.db"
    old_store(path, 1).close()
    with Store(path, readonly=True) as store:  # `runs`, `show`, the TUI: they only read
        assert store.schema_version == len(MIGRATIONS)


def test_runs_without_a_store_is_an_empty_list_and_a_bad_busy_timeout_is_one_line(cli, monkeypatch):
    result = cli("runs", "--format", "json")
    assert result.exit_code == 0 and result.json() == []
    monkeypatch.setenv("PROVERCTL_STORE_BUSY_TIMEOUT", "abc")
    for args in (("prove", "-", "--k", "1"), ("runs",), ("config",)):
        bad = cli(*args, input="theorem t : True := by\n  sorry\n")
        assert bad.exit_code == 2 and "bad value 'abc' for store_busy_timeout from PROVERCTL_STORE_BUSY_TIMEOUT" in bad.stderr, args
        assert "Traceback" not in bad.stderr


def test_every_setting_can_live_in_the_config_file_and_secrets_are_hidden(cli, hermetic, monkeypatch):
    from proverctl.paths import Paths

    config = Paths.resolve().config_file
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('k = 3\nendpoint = "http://127.0.0.1:9"\napi_key = "sk-secret"\nstore_busy_timeout = 5\n')
    rows = {r["name"]: r for r in cli("config", "--format", "json").json()}
    assert (rows["k"]["value"], rows["k"]["source"]) == (3, "config")
    assert rows["endpoint"]["value"] == "http://127.0.0.1:9" and rows["store_busy_timeout"]["value"] == 5.0
    assert rows["api_key"]["value"] == "(set)" and "sk-secret" not in cli("config", "--format", "human").stdout
    result = cli("prove", "-", input="theorem t : True := by\n  sorry\n")  # the endpoint from the config file is used
    assert result.exit_code == 3 and "http://127.0.0.1:9" in result.stderr


def test_export_to_a_file_and_show_without_padding_in_a_pipe(cli, hermetic, tmp_path):
    with Store(hermetic / "proverctl" / "data" / "attempts.sqlite3") as store:
        run_id = new_run(store)
        (target_id,) = store.add_targets(run_id, [TARGET])
        store.add_attempt(AttemptRow(target_id, 0, 0, {"p": 1}, "out", "theorem t : True := by\n  trivial", "proved", [], []),
                          proved=True)
    out = tmp_path / "runs" / "run.jsonl"
    result = cli("export", str(run_id), "-o", str(out))
    assert result.exit_code == 0 and result.stdout == "" and f"wrote {out}" in result.stderr
    assert json.loads(out.read_text())["code"].startswith("theorem t")
    shown = cli("show", "a1", "--format", "human").stdout
    assert "   1 theorem t : True := by\n   2   trivial\n" in shown
    assert max(len(line) for line in shown.splitlines()) < 200  # no line padded to the console's width


def test_show_one_section_of_an_attempt(cli, hermetic):
    with Store(hermetic / "proverctl" / "data" / "attempts.sqlite3") as store:
        run_id = new_run(store)
        (target_id,) = store.add_targets(run_id, [TARGET])
        store.add_attempt(AttemptRow(target_id, 0, 0, {"messages": [{"role": "user", "content": "Prove it."}]}, "Plan...\n```lean4\n...```",
                                     "theorem t : True := by\n  trivial", "rejected", ["r"],
                                     [{"severity": "error", "line": 2, "column": 2, "data": "unsolved goals"}]))
    assert cli("show", "a1", "--section", "code").stdout == "theorem t : True := by\n  trivial\n"
    assert cli("show", f"{run_id}/t/0", "--section", "messages").stdout == "error 2:2: unsolved goals\n"
    assert cli("show", "a1", "--section", "raw").stdout.startswith("Plan...")
    assert cli("show", "a1", "--section", "prompt").stdout == "[user]\nProve it.\n"
    assert cli("show", "a1", "--section", "code", "--format", "json").json() == "theorem t : True := by\n  trivial"
    assert cli("show", "a1", "--section", "diff").exit_code == 2
    assert cli("show", str(run_id), "--section", "code").exit_code == 2


def test_show_pages_long_output_on_a_terminal_through_pager(hermetic, tmp_path, monkeypatch):
    from terminal import run_on_terminal

    long_code = "theorem t : True := by\n" + "".join(f"  have h{i} : True := trivial\n" for i in range(200)) + "  trivial"
    with Store(hermetic / "proverctl" / "data" / "attempts.sqlite3") as store:
        run_id = new_run(store)
        (target_id,) = store.add_targets(run_id, [TARGET])
        store.add_attempt(AttemptRow(target_id, 0, 0, {"p": 1}, "out", long_code, "rejected", ["r"], []))
        store.add_attempt(AttemptRow(target_id, 1, 0, {"p": 1}, "out", "theorem t : True := by\n  trivial", "proved", [], []),
                          proved=True)
    paged = tmp_path / "paged.txt"
    monkeypatch.setenv("PAGER", f"cat > {paged}")
    screen = run_on_terminal("show", "a1", columns=120, rows=40)
    assert "h199" in paged.read_text()  # the whole attempt went to the pager (highlighted: ANSI between words)
    assert "h199" not in screen
    paged.unlink()
    short = run_on_terminal("show", "a2", columns=120, rows=40)  # fits the terminal: printed, no pager
    assert "trivial" in short and not paged.exists()
    monkeypatch.setenv("PAGER", "cat")  # PAGER=cat: no paging, as git
    assert "h199" in run_on_terminal("show", "a1", columns=120, rows=40)


def test_an_attempts_code_is_wrapped_on_a_narrow_terminal_never_cut():
    """The stdout console soft-wraps text; a code listing printed through it would be cropped at the width
    with no marker. It is wrapped instead: every character of a long line is there."""
    from rich.console import Console

    from proverctl.cli.runs import _print_attempt

    long_line = "theorem t (h : a_very_long_hypothesis_name_that_goes_on = another_long_name_here) : True := by"
    attempt = {"id": 1, "sample": 0, "round": 0, "verdict": "proved", "judge": "repl", "sandbox": "none", "prompt_tokens": 1,
               "completion_tokens": 2, "gen_seconds": 0.1, "verify_seconds": 0.1, "reasons": [], "turns": None,
               "code": long_line + "\n  trivial\n", "messages": [], "raw_output": "x"}
    console = Console(width=50, force_terminal=True, color_system=None, soft_wrap=True, record=True)
    _print_attempt(console, attempt)
    text = "".join(console.export_text().split())
    assert "".join(long_line.split()) in text
