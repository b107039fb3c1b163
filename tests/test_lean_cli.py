"""`targets`, `check`, `lean setup` and `doctor` through the CLI."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from proverctl.errors import ExitCode

TESTS = Path(__file__).parent
SAMPLE = """import Mathlib
import Aesop

set_option maxHeartbeats 400000

/-- doc -/
theorem foo (x : ℕ) : x + 0 = x := by
  sorry

theorem bar : 1 = 1 := rfl

namespace Ns
lemma baz (a b : ℕ) (h : a = b) : b = a := by
  simp [h]
end Ns

example : True := by sorry
"""


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "Sample.lean"
    path.write_text(SAMPLE, encoding="utf-8")
    return path



def test_targets_json_and_stdin(cli, sample):
    rows = cli("targets", str(sample), "--format", "json").json()
    assert [(r["name"], r["kind"], r["line"]) for r in rows] == [("foo", "theorem", 7), (None, "example", 17)]
    assert rows[0]["statement"] == "theorem foo (x : ℕ) : x + 0 = x :="
    piped = cli("targets", "-", input=SAMPLE)
    assert piped.json() == rows
    human = cli("targets", str(sample), "--format", "human")
    assert "foo" in human.stdout and "(example)" in human.stdout


def latin1(path: Path) -> Path:
    path.write_bytes(b"theorem t : True := by\n  -- \xe9\n  sorry\n")
    return path


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p / "missing.lean", "missing.lean: no such file"),
        (lambda p: p, "is a directory"),
        (lambda p: latin1(p / "latin1.lean"), "is not UTF-8 text"),
    ],
)
def test_targets_and_check_bad_inputs(cli, tmp_path, setup, message, standin_repl):
    path = setup(tmp_path)
    for command in ("targets", "check"):
        result = cli(command, str(path))
        assert result.exit_code == ExitCode.USAGE, result
        expected = "has no .lean files" if command == "check" and path.is_dir() else message  # check takes folders
        assert expected in result.stderr.splitlines()[0]


def test_check_empty_file_is_a_usage_error(cli, tmp_path, standin_repl):
    empty = tmp_path / "Empty.lean"
    empty.write_text("import Mathlib\n-- nothing here\n")
    result = cli("check", str(empty))
    assert result.exit_code == ExitCode.USAGE and "no declarations to check" in result.stderr


def test_check_file_runs_the_full_verdict(cli, sample, standin_repl):
    result = cli("check", str(sample), "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED, result
    rows = {r["name"]: r for r in result.json()}
    assert set(rows) == {"foo", "bar", "Ns.baz", "example@17"}
    assert rows["bar"]["status"] == "proved" and rows["bar"]["axioms"] == ["propext", "Classical.choice", "Quot.sound"]
    assert rows["Ns.baz"]["status"] == "proved"
    assert rows["foo"]["status"] == "rejected"
    assert "uses `sorry` (line 8)" in rows["foo"]["reasons"]
    assert any(m["line"] == 7 and "sorry" in m["data"] for m in rows["foo"]["messages"])  # file line numbers
    assert rows["example@17"]["status"] == "rejected"
    for row in rows.values():
        assert {"name", "status", "reasons", "messages", "seconds"} <= set(row)
    run = {r["run"] for r in rows.values()}
    assert len(run) == 1 and None not in run  # the check is recorded as one run, which each row names
    shown = cli("show", str(run.pop()), "--format", "json").json()
    assert shown["kind"] == "check" and {t["name"] or f"example@{t['line']}" for t in shown["targets"]} == set(rows)


def test_check_a_real_solved_file_is_proved(cli, tmp_path, standin_repl):
    with zipfile.ZipFile(TESTS / "fixtures" / "model-outputs" / "deepseek-prover-v2-minif2f-test.zip") as z:
        text = z.read("test/amc12b_2020_p2.lean").decode("utf-8")
    path = tmp_path / "amc12b_2020_p2.lean"
    path.write_text(text, encoding="utf-8")
    result = cli("check", str(path), "--format", "json")
    assert result.exit_code == 0, result
    assert [(r["name"], r["status"]) for r in result.json()] == [("amc12b_2020_p2", "proved")]


def test_check_native_decide_needs_the_flag(cli, tmp_path, standin_repl):
    path = tmp_path / "Native.lean"
    path.write_text("theorem n : 2 + 2 = 4 := by\n  native_decide\n")
    assert cli("check", str(path)).exit_code == ExitCode.NOT_PROVED
    assert cli("check", str(path), "--allow-native-decide").exit_code == 0


def test_check_code_execution_is_refused_before_lean(cli, tmp_path, standin_repl):
    log = tmp_path / "log.jsonl"
    standin_repl("--log", str(log))
    path = tmp_path / "Evil.lean"
    path.write_text('theorem t : True := trivial\nrun_cmd Lean.logInfo "hi"\n')
    result = cli("check", str(path), "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED
    assert "`run_cmd` is not allowed" in result.json()[0]["reasons"][0]
    assert not log.exists()
    # A user's own #print or #check is fine; #eval is code: in the judge's compile it could write the very
    # olean the judge reads (and exit 0), so it refuses the file like run_cmd.
    harmless = tmp_path / "Mine.lean"
    harmless.write_text('theorem t : True := trivial\n#print axioms t\n#check t\n')
    assert cli("check", str(harmless), "--format", "json").json()[0]["status"] == "proved"
    evaluated = tmp_path / "Eval.lean"
    evaluated.write_text('theorem t : True := trivial\n#eval 1 + 1\n')
    assert "command `#eval` is not allowed" in cli("check", str(evaluated), "--format", "json").json()[0]["reasons"][0]
    rewritten = tmp_path / "Macro.lean"
    rewritten.write_text("macro_rules\n  | `(command| theorem B : (2:Nat) + 2 = 5 := $_) => `(command| theorem B : True := trivial)\n\n"
                         "theorem B : (2:Nat) + 2 = 5 := by\n  decide\n")
    assert "`macro_rules` is refused" in cli("check", str(rewritten), "--format", "json").json()[0]["reasons"][0]


def test_check_crash_is_exit_4_and_timeout_exit_1(cli, sample, standin_repl):
    standin_repl("--crash-on", "theorem")
    crashed = cli("check", str(sample), "--format", "json")
    assert crashed.exit_code == ExitCode.VERIFIER
    assert all(r["status"] in ("error", "rejected") for r in crashed.json())
    standin_repl("--hang-on", "theorem")
    hung = cli("check", str(sample), "--timeout", "1", "--format", "json")
    assert hung.exit_code == ExitCode.NOT_PROVED
    assert {r["status"] for r in hung.json()} <= {"timeout", "rejected"}


def test_check_without_lean_exits_3_with_the_setup_hint(cli, sample, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = cli("check", str(sample))
    assert result.exit_code == ExitCode.ENVIRONMENT
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: no Lean workspace for profile deepseek-v2")
    assert "proverctl lean setup" in lines[1]


def test_check_bad_repl_command_is_exit_3(cli, sample, monkeypatch):
    monkeypatch.setenv("PROVERCTL_REPL_COMMAND", "/nonexistent/repl --flag")
    result = cli("check", str(sample))
    assert result.exit_code == ExitCode.ENVIRONMENT and "REPL command `/nonexistent/repl` not found" in result.stderr


# ---------------------------------------------------------------------------------------------
# lean setup and doctor with fake tools on PATH


def fake_tool(bindir: Path, name: str, log: Path, exit_code: int = 0, version: str = "") -> None:
    script = bindir / name
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "{name} $*" >> "{log}"\n'
        f'if [ "$1" = "--version" ]; then echo "{version or name + " 1.0"}"; exit 0; fi\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_lean(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "argv.log"
    for tool in ("elan", "lake", "lean"):
        fake_tool(bindir, tool, log)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return bindir, log


def test_lean_setup_copies_template_runs_lake_and_records(cli, fake_lean, hermetic):
    bindir, log = fake_lean
    result = cli("lean", "setup", "--profile", "kimina", "--format", "json")
    assert result.exit_code == 0, result
    data = result.json()
    workspace = Path(data["path"])
    assert workspace == hermetic / "proverctl" / "data" / "lean" / "kimina"
    assert (workspace / "lean-toolchain").read_text() == "leanprover/lean4:v4.15.0\n"
    assert "9837ca9d65d9de6fad1ef4381750ca688774e608" in (workspace / "lakefile.lean").read_text()
    assert json.loads((workspace / "lake-manifest.json").read_text())["packages"][0]["rev"] == "9837ca9d65d9de6fad1ef4381750ca688774e608"
    assert log.read_text().splitlines() == ["lake exe cache get", "lake exe repl", "lake exe safe_verify"]
    assert [s["status"] for s in data["steps"]] == ["ok", "ok", "ok"]
    assert "577e95319a2bb1bb8df541f0c645811f6577a0ae" in (workspace / "lakefile.lean").read_text()  # the judge's pin
    assert "$ (cd" in Path(data["log"]).read_text()
    # Idempotent: a second run changes no file and runs the same steps.
    before = {p.name: p.read_bytes() for p in workspace.iterdir()}
    assert cli("lean", "setup", "--profile", "kimina").exit_code == 0
    assert {p.name: p.read_bytes() for p in workspace.iterdir()} == before
    # check now finds the workspace and runs `lake ... repl` in it (the fake lake answers nothing).
    records = json.loads((hermetic / "proverctl" / "data" / "lean" / "workspaces.json").read_text())
    assert records == {"kimina": str(workspace)}


def test_lean_setup_judge_step_counts_the_built_binary_not_the_exit_code(cli, fake_lean, tmp_path):
    """`lake exe safe_verify` builds SafeVerify and then runs it without arguments (exit 1)."""
    bindir, log = fake_lean
    workspace = tmp_path / "ws"
    binary = workspace / ".lake/packages/SafeVerify/.lake/build/bin/safe_verify"
    (bindir / "lake").write_text("#!/usr/bin/env bash\n"
                                 f'echo "lake $*" >> "{log}"\n'
                                 f'if [ "$2" = "safe_verify" ]; then mkdir -p "{binary.parent}" && touch "{binary}"; exit 1; fi\n'
                                 "exit 0\n")
    result = cli("lean", "setup", "--dir", str(workspace), "--format", "json")
    assert result.exit_code == 0, result
    assert [s["name"] for s in result.json()["steps"]][-1] == "build the kernel judge (SafeVerify)"
    binary.unlink()
    (bindir / "lake").write_text('#!/usr/bin/env bash\nif [ "$2" = "safe_verify" ]; then exit 1; fi\nexit 0\n')  # builds nothing
    failed = cli("lean", "setup", "--dir", str(workspace))
    assert failed.exit_code == ExitCode.ENVIRONMENT and "build the kernel judge" in failed.stderr


def test_lean_setup_without_lake_says_how_to_install(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if any((Path(d) / "lake").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("a real lake is installed here")
    result = cli("lean", "setup", "--dir", str(tmp_path / "ws"))
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "`lake` is not on PATH" in result.stderr and "elan" in result.stderr
    assert (tmp_path / "ws" / "lakefile.lean").is_file()  # the template is there for the next run


def test_lean_setup_failing_step_names_it_and_the_log(cli, fake_lean, tmp_path):
    bindir, log = fake_lean
    fake_tool(bindir, "lake", log, exit_code=1)
    result = cli("lean", "setup", "--dir", str(tmp_path / "ws"))
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert "failed at step 'fetch Mathlib's build cache'" in result.stderr and "lean-setup-deepseek-v2.log" in result.stderr
    # The shipped manifest was set aside once and the step retried with Lake's own resolution.
    assert log.read_text().splitlines() == ["lake exe cache get", "lake exe cache get"]


def test_lean_setup_unknown_profile(cli):
    result = cli("lean", "setup", "--profile", "lean3")
    assert result.exit_code == ExitCode.USAGE and "unknown Lean profile 'lean3'" in result.stderr


def test_doctor_reports_each_check_with_its_fix(cli, fake_lean, standin_repl):
    result = cli("doctor", "--format", "json")
    rows = {r["name"]: r for r in result.json()}
    assert rows["python"]["status"] == "ok"
    assert rows["lake"]["detail"] == "lake 1.0"
    assert rows["workspace (deepseek-v2)"]["status"] == "fail"
    assert rows["workspace (deepseek-v2)"]["fix"] == "proverctl lean setup --profile deepseek-v2"
    assert rows["REPL smoke check"]["status"] == "ok"  # the stand-in from PROVERCTL_REPL_COMMAND
    assert result.exit_code == ExitCode.ENVIRONMENT


def test_doctor_without_lean(cli, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = cli("doctor", "--format", "json")
    rows = {r["name"]: r for r in result.json()}
    assert rows["lake"]["status"] == "fail" and "elan" in rows["lake"]["fix"]
    assert rows["REPL smoke check"]["status"] == "fail"
    assert result.exit_code == ExitCode.ENVIRONMENT


@pytest.mark.lean
def test_real_lean_checks_a_core_theorem(cli, tmp_path):
    """Needs `proverctl lean setup` done on this machine (skips elsewhere)."""
    import shutil

    from proverctl.lean.workspace import recorded_workspaces

    if shutil.which("lake") is None or not recorded_workspaces():
        pytest.skip("no Lean toolchain / workspace here (run `proverctl lean setup`)")
    path = tmp_path / "Core.lean"
    path.write_text("theorem two : 1 + 1 = 2 := rfl\n\ntheorem bad : 1 + 1 = 3 := by\n  sorry\n")
    result = cli("check", str(path), "--format", "json")
    statuses = {r["name"]: r["status"] for r in result.json()}
    assert statuses == {"two": "proved", "bad": "rejected"}


def test_check_a_folder_gives_one_verdict_per_declaration_and_a_summary(cli, tmp_path, standin_repl):
    project = tmp_path / "proj"
    (project / "Proj" / "Sub").mkdir(parents=True)
    (project / ".lake" / "packages").mkdir(parents=True)
    (project / ".lake" / "packages" / "Dep.lean").write_text("theorem dep : True := by\n  sorry\n")  # build dirs are skipped
    (project / "Proj" / "A.lean").write_text("theorem a : True := trivial\n\ntheorem b : True := by\n  sorry\n")
    (project / "Proj" / "Sub" / "B.lean").write_text("theorem c : (2 : Nat) + 2 = 4 := by\n  decide\n")
    (project / "Notes.lean").write_text("-- nothing to check here\n")
    result = cli("check", str(project), "--format", "json")
    assert result.exit_code == ExitCode.NOT_PROVED, result
    rows = [(Path(r["file"]).name, r["name"], r["status"]) for r in result.json()]
    assert rows == [("A.lean", "a", "proved"), ("A.lean", "b", "rejected"), ("B.lean", "c", "proved")]
    assert "2 file(s), 3 declaration(s): 2 proved" in result.stderr
    human = cli("check", str(project / "Proj" / "Sub"), "--format", "human")
    assert human.exit_code == 0 and "B.lean:1  c  proved" in human.stdout
    assert cli("check", str(tmp_path / "proj" / ".lake")).exit_code == ExitCode.USAGE  # nothing to check there


def test_lean_setup_records_what_it_built_in_the_trust_manifest(cli, fake_lean, hermetic, sandboxed):
    """A fake `lake` that builds like the real one (the REPL and SafeVerify binaries land where Lake puts
    them): setup records both with their sha256 and the pinned judge's label; a changed judge then gives
    no verdict under --judge kernel until `lean setup`/`lean trust` records it again."""
    from proverctl.lean.trust import JUDGE_BINARY, REPL_BINARY, load

    bindir, log = fake_lean
    lake = bindir / "lake"
    lake.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "lake $*" >> "{log}"\n'
        'if [ "$1 $2" = "exe repl" ]; then mkdir -p "$(dirname ' + str(REPL_BINARY) + ')"; printf "repl" > ' + str(REPL_BINARY) + "; fi\n"
        'if [ "$1 $2" = "exe safe_verify" ]; then mkdir -p "$(dirname ' + str(JUDGE_BINARY) + ')"; printf "judge" > '
        + str(JUDGE_BINARY) + "; exit 1; fi\n"
        "exit 0\n")
    result = cli("lean", "setup", "--profile", "deepseek-v2", "--format", "json")
    assert result.exit_code == 0, result
    workspace = Path(result.json()["path"])
    manifest = load(workspace)
    assert manifest.judge.label == "safeverify@0c0f7dc" and manifest.judge.dialect == "v1"
    assert str((workspace / JUDGE_BINARY).resolve()) in manifest.judge.files
    assert str((workspace / REPL_BINARY).resolve()) in manifest.repl_files
    assert manifest.toolchain == "leanprover/lean4:v4.9.0-rc1"
    (workspace / JUDGE_BINARY).write_text("another judge")
    path = hermetic / "T.lean"
    path.write_text("theorem t : True := trivial\n")
    refused = cli("check", str(path), "--judge", "kernel", "--sandbox", "auto")
    assert refused.exit_code == ExitCode.VERIFIER and "no longer matches its sha256" in refused.stderr
    shown = cli("lean", "trust", "--format", "json")
    assert shown.exit_code == 0 and shown.json()["judge"]["label"] == "safeverify@0c0f7dc"
    assert load(workspace).judge.files[str((workspace / JUDGE_BINARY).resolve())] != manifest.judge.files[str((workspace / JUDGE_BINARY).resolve())]


def test_check_prints_leans_messages_and_goals_as_lean_does(cli, sample, standin_repl):
    """Human output ends with FILE:LINE:COL lines (Lean's own format, column 0-based) that editors and CI
    annotate, and the goal left at each `sorry`; JSON rows carry the goals too."""
    result = cli("check", str(sample), "--format", "human")
    assert result.exit_code == ExitCode.NOT_PROVED
    lines = result.stdout.splitlines()
    assert f"{sample}:7:0: warning: declaration uses 'sorry'" in lines or any(
        line.startswith(f"{sample}:7:") and "declaration uses 'sorry'" in line for line in lines), result.stdout
    at_sorry = [line for line in lines if line.startswith(f"{sample}:8:") and line.endswith("goal at sorry:")]
    assert at_sorry, result.stdout
    assert "⊢ x + 0 = x" in result.stdout
    rows = {r["name"]: r for r in cli("check", str(sample), "--format", "json").json()}
    (goal,) = rows["foo"]["goals"]
    assert goal["line"] == 8 and goal["goal"].endswith("⊢ x + 0 = x") and rows["bar"]["goals"] == []
    # the example is checked under a name proverctl gives it; positions are still the user's columns
    (goal,) = rows["example@17"]["goals"]
    assert (goal["line"], goal["column"]) == (17, SAMPLE.splitlines()[16].index("sorry"))
