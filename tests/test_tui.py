"""The TUI with Pilot: navigation, filters, search, re-verify through the stand-in REPL, live updates,
empty and broken stores, and SVG snapshots of each screen."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from proverctl.store.db import Store
from proverctl.tui.app import make_app
from proverctl.tui.screens import AttemptScreen, AttemptsScreen, RunScreen, RunsScreen, code_view
from proverctl.tui.services import TuiServices, make_services
from tui_data import build, empty_run

TESTS = Path(__file__).parent
SIZE = (110, 36)


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "attempts.sqlite3"
    build(path).close()
    return path


def services_for(path: Path, tmp_path: Path, reverify=None) -> TuiServices:
    services = make_services(path)
    services.output_dir = tmp_path / "out"
    if reverify is not None:
        services.reverify = reverify
    return services


async def settle(pilot, screen_type, predicate=lambda s: True, tries=60):
    for _ in range(tries):
        await pilot.pause(0.05)
        screen = pilot.app.screen
        if isinstance(screen, screen_type) and predicate(screen):
            return screen
    raise AssertionError(f"never reached {screen_type.__name__}; at {type(pilot.app.screen).__name__}")


def rows(screen) -> list[list[str]]:
    table = screen.table
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def test_navigation_filters_search_and_back(store_path, tmp_path):
    async def go():
        app = make_app(services=services_for(store_path, tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            runs = await settle(pilot, RunsScreen, lambda s: s.table.row_count == 1)
            assert rows(runs)[0][:2] == ["1", "2026-11-26 10:40"] or rows(runs)[0][0] == "1"
            await pilot.press("enter")
            run = await settle(pilot, RunScreen, lambda s: s.table.row_count == 2)
            assert [r[:4] for r in rows(run)] == [["mathd_algebra_10", "proved", "REPL-checked (sandbox unknown)", "4"],
                                                  ["lemma_1", "not-proved", "-", "4"]]
            await pilot.press("2")
            await settle(pilot, RunScreen, lambda s: s.table.row_count == 1)
            await pilot.press("1")
            await settle(pilot, RunScreen, lambda s: s.table.row_count == 2)
            await pilot.press("enter")
            attempts = await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 4)
            assert [r[3] for r in rows(attempts)] == ["rejected", "timeout", "error", "proved"]
            assert rows(attempts)[0][5] == "linarith failed to find a contradiction"
            assert rows(attempts)[3][4] == "REPL-checked (sandbox unknown)"  # how each proof was checked
            await pilot.press("5")
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 1 and rows(s)[0][3] == "error")
            await pilot.press("1", "slash")
            await pilot.press(*"norm_num", "enter")
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 1 and rows(s)[0][3] == "proved")
            await pilot.press("enter")
            attempt = await settle(pilot, AttemptScreen, lambda s: s.attempt is not None)
            assert attempt.attempt["verdict"] == "proved"
            await pilot.press("escape")
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 1)
            await pilot.press("escape")  # closes and clears the search
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 4)
            await pilot.press("escape")
            await settle(pilot, RunScreen)
            await pilot.press("escape")
            await settle(pilot, RunsScreen)

    asyncio.run(go())


def test_attempt_screen_marks_errors_and_steps_between_failures(store_path, tmp_path):
    async def go():
        app = make_app(services=services_for(store_path, tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(AttemptScreen(1))
            screen = await settle(pilot, AttemptScreen, lambda s: s.attempt is not None)
            assert screen.attempt["verdict"] == "rejected"
            code = code_view(screen.attempt["code"], screen.attempt["messages"])
            assert code.highlight_lines == {3}  # the error's line is marked
            await pilot.press("n")
            await settle(pilot, AttemptScreen, lambda s: s.attempt is not None and s.attempt["id"] == 2)
            await pilot.press("n")
            await settle(pilot, AttemptScreen, lambda s: s.attempt is not None and s.attempt["id"] == 3)
            await pilot.press("n")  # attempt 4 is the proof: skipped
            await settle(pilot, AttemptScreen, lambda s: s.attempt is not None and s.attempt["id"] == 1)
            await pilot.press("p")
            await settle(pilot, AttemptScreen, lambda s: s.attempt is not None and s.attempt["id"] == 3)

    asyncio.run(go())


def test_reverify_runs_the_stand_in_repl(store_path, tmp_path, standin_repl):
    standin_repl("--reject", "linarith")

    async def go():
        app = make_app(services=services_for(store_path, tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(AttemptScreen(4))  # the proved attempt
            screen = await settle(pilot, AttemptScreen, lambda s: s.attempt is not None)
            await pilot.press("r")
            await settle(pilot, AttemptScreen, lambda s: getattr(s, "reverified", None) is not None, tries=200)
            proved = screen.reverified
            app.push_screen(AttemptScreen(1))  # linarith: the stand-in reports a Lean error
            screen = await settle(pilot, AttemptScreen, lambda s: s.attempt is not None and s.attempt["id"] == 1)
            await pilot.press("r")
            await settle(pilot, AttemptScreen, lambda s: getattr(s, "reverified", None) is not None, tries=200)
            return proved, screen.reverified

    proved, rejected = asyncio.run(go())
    assert proved.proved
    assert rejected.kind.value == "rejected" and rejected.reasons[0].startswith("Lean error at line 3: unsolved goals")


def test_reverify_uses_the_runs_recorded_policy_and_profile(store_path, tmp_path, standin_repl):
    """A native_decide proof accepted with --allow-native-decide stays proved when re-verified: the TUI
    re-checks with the run's request (policy and Lean profile), not with defaults."""
    import dataclasses

    from proverctl.proving import ProveRequest
    from proverctl.store.db import Store
    from proverctl.tui.services import check_request_for
    from tui_data import STATEMENT

    request = ProveRequest(input="examples/Algebra.lean", allow_native_decide=True, lean_profile="kimina")
    native = STATEMENT + " by\n  native_decide\n"
    with Store(store_path) as store:
        store.update_run(1, request=request.to_json())
        store.db.execute("UPDATE attempts SET code = ? WHERE id = 4", (native,))
        check = check_request_for({"name": "t", "kind": "theorem", "line": 1, "file": "f", "header": "", "doc": None,
                                   "statement": "theorem t : True :="}, {"code": "x"}, store.run(1))
        assert check.policy.allow_native_decide and check.lean_profile == "kimina"
        store.update_run(1, request=dataclasses.replace(request, allow_native_decide=False).to_json())

    services = services_for(store_path, tmp_path)
    target = {"run_id": 1, "name": "mathd_algebra_10", "kind": "theorem", "header": "", "doc": None, "statement": STATEMENT, "line": 9,
              "file": "examples/Algebra.lean"}
    refused = asyncio.run(services.reverify(target, {"code": native}))
    assert refused.kind.value == "rejected" and "native_decide" in refused.reasons[0]
    with Store(store_path) as store:
        store.update_run(1, request=request.to_json())
    assert asyncio.run(services.reverify(target, {"code": native})).proved


def test_copy_and_export_write_files_and_say_where(store_path, tmp_path):
    async def go():
        app = make_app(services=services_for(store_path, tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(AttemptScreen(4))
            await settle(pilot, AttemptScreen, lambda s: s.attempt is not None)
            await pilot.press("c", "x")
            await pilot.pause(0.2)
            return [n.message for n in app._notifications]

    notes = asyncio.run(go())
    proof = tmp_path / "out" / "mathd_algebra_10.lean"
    assert proof.read_text().startswith("import Mathlib") and "norm_num [abs_of_nonneg]" in proof.read_text()
    exported = [json.loads(l) for l in (tmp_path / "out" / "run-1.jsonl").read_text().splitlines()]
    assert len(exported) == 8
    assert any(str(proof) in n for n in notes) and any("run-1.jsonl" in n for n in notes)


def test_live_update_while_another_process_writes(store_path, tmp_path):
    writer = f"""
import sys, time
sys.path.insert(0, {str(TESTS.parent)!r})
from proverctl.store.db import Store, AttemptRow
with Store({str(store_path)!r}) as store:
    store.update_run(1, status="running", finished=None)  # as a resumed prove does
    for sample in range(4, 7):
        time.sleep(0.3)
        store.add_attempt(AttemptRow(1, sample, 0, None, "out", None, "rejected", ["x"], []))
    time.sleep(0.3)
    store.finish_run(1, "finished")
"""

    async def go():
        app = make_app(services=services_for(store_path, tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(AttemptsScreen(1))
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 4)
            screen = app.screen
            assert not screen.live  # a finished run's attempts cannot change: no polling
            screen.live = True  # the writer below resumes the run; the runs list would show it running
            proc = subprocess.Popen([sys.executable, "-c", writer])
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 7, tries=600)
            proc.wait(timeout=30)
            await settle(pilot, AttemptsScreen, lambda s: not s.live, tries=200)  # finished again: polling stops

    asyncio.run(go())


def test_a_running_runs_target_list_follows_only_what_changed(store_path, tmp_path):
    """While attempts land, the run screen reads only the targets they touched and redraws only their
    changed cells: the table is never rebuilt, the cursor stays where the user put it."""
    with Store(store_path) as store:
        store.update_run(1, status="running", finished=None)
    writer = f"""
import sys, time
sys.path.insert(0, {str(TESTS.parent)!r})
from proverctl.store.db import Store, AttemptRow
with Store({str(store_path)!r}) as store:
    for sample in range(4, 7):
        time.sleep(0.4)
        store.add_attempt(AttemptRow(2, sample, 0, None, "out", None, "rejected", ["x"], []))
"""

    async def go():
        app = make_app(services=services_for(store_path, tmp_path), run_id=1)
        async with app.run_test(size=SIZE) as pilot:
            screen = await settle(pilot, RunScreen, lambda s: s.table.row_count == 2)
            assert screen.live
            await pilot.press("down")
            fills = []
            original = screen.fill
            screen.fill = lambda *a: (fills.append(a), original(*a))
            proc = subprocess.Popen([sys.executable, "-c", writer])
            await settle(pilot, RunScreen, lambda s: rows(s)[1][3] == "7", tries=600)
            proc.wait(timeout=30)
            return fills, screen.table.cursor_row, rows(screen)

    fills, cursor, shown = asyncio.run(go())
    assert fills == [] and cursor == 1  # followed by patching cells, not by rebuilding the table
    assert shown[0][3] == "4" and shown[1][:4] == ["lemma_1", "not-proved", "-", "7"]


def test_a_row_off_screen_is_redrawn_when_it_scrolls_in(tmp_path):
    """An update to a row the user cannot see waits (redrawing the table for it costs more than the update
    on a big run) and is applied the moment the row scrolls into view."""
    from proverctl.store.db import AttemptRow

    path = tmp_path / "attempts.sqlite3"
    with build(path, attempts_per_target=1, targets=120) as store:
        store.update_run(1, status="running", finished=None)
        last = store.targets(1)[-1]["id"]

    async def go():
        app = make_app(services=services_for(path, tmp_path), run_id=1)
        async with app.run_test(size=SIZE) as pilot:
            screen = await settle(pilot, RunScreen, lambda s: s.table.row_count == 120)
            with Store(path) as store:
                store.add_attempt(AttemptRow(last, 5, 0, None, "out", None, "rejected", ["x"], []))
            await settle(pilot, RunScreen, lambda s: s._mark > 120, tries=100)  # followed, off screen
            before = str(screen.table.get_row_at(119)[3])
            await pilot.press("ctrl+end")  # the table's own key for its last row
            await settle(pilot, RunScreen, lambda s: str(s.table.get_row_at(119)[3]) == "2", tries=100)
            return before

    assert asyncio.run(go()) == "1"


def test_empty_missing_newer_and_locked_stores(tmp_path):
    async def message(services, screen=None):
        app = make_app(services=services)
        async with app.run_test(size=SIZE) as pilot:
            if screen is not None:
                app.push_screen(screen)
            for _ in range(200):
                await pilot.pause(0.05)
                if app.screen.query("#message") and str(app.screen.query_one("#message").render()).strip():
                    break
            return str(app.screen.query_one("#message").render())

    missing = asyncio.run(message(services_for(tmp_path / "none.sqlite3", tmp_path)))
    assert "no attempt store at" in missing and "proverctl prove FILE" in missing
    path = tmp_path / "store.sqlite3"
    with Store(path) as store:
        run_id = empty_run(store)
    assert "this run has no targets" in asyncio.run(message(services_for(path, tmp_path), RunScreen(run_id)))
    with Store(path) as store:  # a newer proverctl wrote it
        with store.transaction() as db:
            db.execute("INSERT INTO schema_migrations (version, applied) VALUES (99, 0)")
    assert "written by a newer proverctl" in asyncio.run(message(services_for(path, tmp_path)))


def test_reads_while_a_writer_holds_the_lock(store_path, tmp_path):
    writer = Store(store_path)
    writer.db.execute("BEGIN IMMEDIATE")  # a running `prove` in the middle of a commit
    try:
        async def go():
            app = make_app(services=services_for(store_path, tmp_path))
            async with app.run_test(size=SIZE) as pilot:
                return (await settle(pilot, RunsScreen, lambda s: s.table.row_count == 1)).table.row_count

        assert asyncio.run(go()) == 1
    finally:
        writer.db.execute("ROLLBACK")
        writer.close()


def test_tui_cli_opens_the_app(cli, monkeypatch):
    seen = {}

    def fake_run(self):
        seen["run"] = self.start_run

    monkeypatch.setattr("proverctl.tui.app.ProverApp.run", fake_run)
    assert cli("tui", "--run", "3").exit_code == 0 and seen == {"run": 3}


# ---------------------------------------------------------------------------------------------
# Snapshots (pytest-textual-snapshot): each screen


@pytest.fixture
def snap_app(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")  # the runs table shows local times
    time.tzset()
    path = tmp_path / "attempts.sqlite3"
    build(path).close()
    return make_app(services=services_for(path, tmp_path))


def _snapshots_available():
    import importlib.util

    return importlib.util.find_spec("pytest_textual_snapshot") is not None


snapshot = pytest.mark.skipif(not _snapshots_available(), reason="pytest-textual-snapshot not installed")


@snapshot
def test_snapshot_runs(snap_compare, snap_app):
    assert snap_compare(snap_app, terminal_size=SIZE, run_before=_wait(1))


@snapshot
def test_snapshot_run(snap_compare, snap_app):
    assert snap_compare(snap_app, press=["enter"], terminal_size=SIZE, run_before=_wait(2))


@snapshot
def test_snapshot_attempts(snap_compare, snap_app):
    assert snap_compare(snap_app, press=["enter"], terminal_size=SIZE, run_before=_wait(3))


@snapshot
def test_snapshot_attempt(snap_compare, snap_app):
    assert snap_compare(snap_app, terminal_size=(110, 40), run_before=_wait(4))


def _wait(depth: int):
    async def before(pilot):
        await settle(pilot, RunsScreen, lambda s: s.table.row_count >= 1)
        if depth >= 2:
            await pilot.press("enter")
            await settle(pilot, RunScreen, lambda s: s.table.row_count == 2)
        if depth >= 3:
            await pilot.press("enter")
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 4)
        if depth >= 4:
            await pilot.press("enter")
            await settle(pilot, AttemptScreen, lambda s: s.attempt is not None)
        await pilot.pause(0.2)

    return before


def test_a_check_run_is_shown_as_a_check_with_the_files_line_numbers(cli, tmp_path, standin_repl, hermetic):
    """A `check` run has no model, tokens or revision to show; its declaration's code is numbered with the
    file's lines, so Lean's 16:2 points at line 16 of what is shown, marked."""
    from proverctl.paths import Paths

    path = tmp_path / "Checked.lean"
    path.write_text("import Mathlib\n" + "\n" * 12 + "/-- doc -/\ntheorem t (x : ℕ) : x + 0 = x := by\n  bogus_tactic\n")
    standin_repl("--reject", "bogus_tactic")
    result = cli("check", str(path), "--format", "json")
    (row,) = result.json()
    (error,) = [m for m in row["messages"] if m["severity"] == "error"]
    assert error["line"] == 16

    async def go():
        app = make_app(services=services_for(Paths.resolve().store_db, tmp_path), run_id=row["run"])
        async with app.run_test(size=SIZE) as pilot:
            run = await settle(pilot, RunScreen, lambda s: s.table.row_count == 1)
            head = str(pilot.app.screen.query_one("#message").render())
            await pilot.press("enter")
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 1)
            await pilot.press("enter")
            attempt = await settle(pilot, AttemptScreen, lambda s: s.attempt is not None)
            summary = str(attempt.query_one("#summary").render())
            messages = str(attempt.query_one("#messages").render())
            return run, head, summary, messages, attempt

    run, head, summary, messages, attempt = asyncio.run(go())
    assert "· check ·" in head and "None" not in head
    assert "check of" in summary and "None" not in summary and "@main" not in summary and "tokens" not in summary
    assert f"{path}:16:" in messages
    from proverctl.tui.screens import first_line

    assert first_line(attempt.run, attempt.target, attempt.attempt["code"]) == 14  # the doc comment's line


def test_a_targets_decomposition_tree_opens_its_nodes(store_path, tmp_path):
    """`t` on a target draws its sketches and holes; enter on a hole opens the hole's attempts, on a
    sketch the planner's answer."""
    from proverctl.store.db import AttemptRow
    from proverctl.tui.screens import TreeScreen

    with Store(store_path) as store:
        (target_id, _) = [t["id"] for t in store.targets(1)]
        planner = store.add_attempt(AttemptRow(target_id, 1001, 0, None, "### Proof Sketch ...", "theorem ...", "sketch", [], [],
                                               kind="sketch"))
        sketch = store.add_sketch(target_id, 0, 0, attempt_id=planner, code="theorem ...", status="abandoned",
                                  reasons=["mathd_algebra_10_s1_h1 is false: its negation was proved"])
        (hole_target,) = store.add_targets(1, [{"file": "examples/Algebra.lean", "name": "mathd_algebra_10_s1_h1", "kind": "theorem",
                                                "line": 9, "statement": "theorem mathd_algebra_10_s1_h1 : 1 = 2 :=", "doc": None,
                                                "header": "", "header_hash": "h"}], parent_id=target_id)
        store.add_attempt(AttemptRow(hole_target, 0, 0, None, "no", "theorem x", "rejected", ["no"], []))
        store.add_hole(sketch, 0, name="mathd_algebra_10_s1_h1", statement="theorem mathd_algebra_10_s1_h1 : 1 = 2 :=",
                       method="extract_goal", target_id=hole_target, status="false")

    async def go():
        app = make_app(services=services_for(store_path, tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, RunsScreen, lambda s: s.table.row_count == 1)
            await pilot.press("enter")
            await settle(pilot, RunScreen, lambda s: s.table.row_count == 3)
            await pilot.press("t")
            screen = await settle(pilot, TreeScreen, lambda s: s.query_one("#tree").root.children)
            tree = screen.query_one("#tree")
            (sketch_node,) = tree.root.children
            assert "sketch 1: abandoned" in str(sketch_node.label) and "is false" in str(sketch_node.label)
            (hole_node,) = sketch_node.children
            assert "mathd_algebra_10_s1_h1: false" in str(hole_node.label) and "extract_goal" in str(hole_node.label)
            tree.move_cursor(hole_node)
            await pilot.press("enter")
            attempts = await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 1)
            assert attempts.target_id == hole_target
            await pilot.press("escape")
            await settle(pilot, TreeScreen)
            tree.move_cursor(sketch_node)
            await pilot.press("enter")
            opened = await settle(pilot, AttemptScreen, lambda s: s.attempt is not None)
            assert opened.attempt_id == planner

    asyncio.run(go())


def test_two_runs_side_by_side(tmp_path):
    """`d` on one run, `d` on another: the diff screen lists the targets that differ; enter opens one."""
    from proverctl.store.db import AttemptRow
    from proverctl.tui.screens import DiffScreen

    path = tmp_path / "attempts.sqlite3"
    with Store(path) as store:
        for run_index, code in enumerate(("theorem t : True := trivial", "theorem t : True := by\n  native_decide")):
            run = store.create_run(kind="check", command="c", input=f"r{run_index}.lean", model=None, revision=None, engine=None,
                                   endpoint=None, lean_profile=None, settings={})
            (target,) = store.add_targets(run, [{"file": "T.lean", "name": "t", "kind": "theorem", "line": 1,
                                                 "statement": "theorem t : True :=", "doc": None, "header": "", "header_hash": "h"}])
            store.add_attempt(AttemptRow(target, 0, 0, None, None, code, "proved", [], [], judge="repl", sandbox="bwrap"), proved=True)
            store.set_target(target, status="proved")

    async def go():
        app = make_app(services=services_for(path, tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, RunsScreen, lambda s: s.table.row_count == 2)
            await pilot.press("d", "down", "d")
            diff = await settle(pilot, DiffScreen, lambda s: s.table.row_count == 1)
            row = rows(diff)[0]
            # runs are listed newest first: A is run 2 (the native_decide proof), B run 1
            assert row[0] == "t" and "native_decide" in row[3] and row[4] == "trivial" and "native_decide" in row[5]
            await pilot.press("enter")
            await settle(pilot, AttemptsScreen, lambda s: s.table.row_count == 1)

    asyncio.run(go())
