"""`proverctl doctor`: every check the tool depends on, each with the fix when it fails."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from proverctl.paths import Paths, existing_ancestor
from proverctl.settings import Settings

CORE_MODULES = ("typer", "rich", "huggingface_hub", "platformdirs", "psutil", "httpx", "textual")
MIN_FREE_GB = 20


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def _python() -> list[Check]:
    checks = [Check("python", "ok" if sys.version_info >= (3, 10) else "fail", sys.version.split()[0],
                    None if sys.version_info >= (3, 10) else "use Python 3.10 or newer")]
    missing = [m for m in CORE_MODULES if importlib.util.find_spec(m) is None]
    checks.append(Check("core packages", "fail" if missing else "ok", "missing: " + ", ".join(missing) if missing else "all importable",
                        "pip install -e ." if missing else None))
    for module, extra, why in (("vllm", "vllm", "GPU engine"), ("transformers", "hf", "CPU / small-GPU engine"),
                               ("lean_dojo", "dojo", "LeanDojo repositories"), ("ray", "ray", "verification on Ray")):
        present = importlib.util.find_spec(module) is not None
        checks.append(Check(f"{module} ({why})", "ok" if present else "warn", "installed" if present else "not installed",
                            None if present else f"pip install 'proverctl[{extra}]'"))
    return checks


def _gpu() -> list[Check]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [Check("GPU", "warn", "nvidia-smi not found: no NVIDIA GPU visible", "serve needs a GPU for vLLM; use --engine transformers or --endpoint URL")]
    try:
        out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Check("GPU", "warn", f"nvidia-smi failed: {exc}", "check the NVIDIA driver")]
    gpus = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    checks = [Check("GPU", "ok" if gpus else "warn", "; ".join(gpus) or "nvidia-smi lists no GPU", None if gpus else "check the NVIDIA driver")]
    if importlib.util.find_spec("torch") is not None:
        import torch

        available = torch.cuda.is_available()
        checks.append(Check("torch.cuda", "ok" if available else "warn", f"torch {torch.__version__}, cuda available: {available}",
                            None if available else "install a CUDA build of torch"))
    return checks


def _lean(settings: Settings, paths: Paths) -> list[Check]:
    from proverctl.lean.workspace import ELAN_INSTALL, REPL_BINARY, recorded_workspaces, tool_version

    checks = []
    for tool in ("elan", "lake", "lean"):
        version = tool_version(tool)
        checks.append(Check(tool, "ok" if version else "fail", version or "not on PATH",
                            None if version else f"install elan: {ELAN_INSTALL}"))
    records = recorded_workspaces(paths)
    profile = settings.lean_profile
    if settings.lean_project:
        checks.append(Check("Lean project", "ok" if Path(settings.lean_project).is_dir() else "fail", settings.lean_project,
                            None if Path(settings.lean_project).is_dir() else "fix PROVERCTL_LEAN_PROJECT"))
    elif profile in records:
        built = (Path(records[profile]) / REPL_BINARY).exists()
        checks.append(Check(f"workspace ({profile})", "ok" if built else "fail", records[profile] + ("" if built else " (REPL not built)"),
                            None if built else f"proverctl lean setup --profile {profile}"))
    else:
        checks.append(Check(f"workspace ({profile})", "fail", "not set up", f"proverctl lean setup --profile {profile}"))
    return checks


def _repl_smoke(settings: Settings, paths: Paths) -> Check:
    """Start one REPL the way every check does (proverctl.verify.factory) and check a core-Lean theorem
    (no Mathlib import, so it takes seconds)."""
    from proverctl.errors import ProverctlError
    from proverctl.lean.pool import CheckJob
    from proverctl.verify.factory import VerifySpec, open_verifier

    try:
        spec = replace(VerifySpec.from_settings(settings), judge_on="local").resolve()  # this machine's REPL, whatever judge_on says
    except ProverctlError as exc:
        return Check("REPL smoke check", "fail", exc.message, exc.hint)

    async def run():
        async with open_verifier(spec, jobs=1) as verification:
            return await verification.pool.check(CheckJob("", "", "theorem proverctl_smoke : 1 + 1 = 2 := rfl\n", 120))

    try:
        outcome = asyncio.run(run())
    except ProverctlError as exc:
        return Check("REPL smoke check", "fail", exc.message, exc.hint)
    if outcome.status != "ok" or outcome.response is None or outcome.response.errors:
        detail = outcome.detail or "; ".join(m.data for m in (outcome.response.errors if outcome.response else []))
        return Check("REPL smoke check", "fail", f"{spec.repl.source}: {outcome.status}: {detail}",
                     "read the REPL's error above; `proverctl lean setup` rebuilds it")
    return Check("REPL smoke check", "ok", f"{' '.join(spec.repl.command)} checked `1 + 1 = 2` in {outcome.seconds:.1f} s")


def _sandbox(settings: Settings, paths: Paths) -> list[Check]:
    """Each sandbox backend of this platform (can it run, does its canary hold) and the configured mode."""
    from proverctl.errors import ProverctlError
    from proverctl.lean import trust
    from proverctl.lean.sandbox import Sandbox, auto_order, resolve, why_not
    from proverctl.lean.sandbox.canary import run_canary

    workspace = Path(settings.lean_project) if settings.lean_project else None
    if workspace is None:
        from proverctl.lean.workspace import recorded_workspaces

        recorded = recorded_workspaces(paths).get(settings.lean_profile)
        workspace = Path(recorded) if recorded and Path(recorded).is_dir() else None
    base = trust.trust_base(workspace, [], paths)
    checks = []
    for name in auto_order():
        why = why_not(name)
        if why is None:
            report = run_canary(Sandbox(name), base)
            held = report["held"]
            why = None if held else "its canary got through: " + "; ".join(report["failures"])
        checks.append(Check(f"sandbox backend {name}", "ok" if why is None else "warn",
                            "works: no network, read-only workspace, cache and judge, no home (canary held)" if why is None else why,
                            None if why is None else _SANDBOX_FIXES.get(name)))
    if settings.sandbox == "none":
        checks.append(Check("sandbox", "warn", "disabled (sandbox = none): Lean runs unsandboxed and verdicts are labelled "
                                               "REPL-checked (unsandboxed)", "set PROVERCTL_SANDBOX=auto"))
        return checks
    try:
        chosen = resolve(settings.sandbox, base)
    except ProverctlError as exc:
        checks.append(Check("sandbox", "fail", exc.message, exc.hint))
        return checks
    checks.append(Check("sandbox", "ok", f"{chosen.name} (sandbox = {settings.sandbox}): kernel-checked verdicts are possible"))
    return checks


def _selftest(settings: Settings, paths: Paths) -> Check:
    """The last `proverctl lean selftest` of the configured workspace."""
    import time

    from proverctl.verify.selftest import last_report

    workspace = settings.lean_project
    if workspace is None:
        from proverctl.lean.workspace import recorded_workspaces

        workspace = recorded_workspaces(paths).get(settings.lean_profile)
    report = last_report(str(Path(workspace).resolve()) if workspace else None, paths)
    fix = f"proverctl lean selftest --profile {settings.lean_profile}"
    if report is None:
        return Check("lean selftest", "warn", "never run for this workspace", fix)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(report.get("finished", 0)))
    short = [c["name"] for c in report.get("classes", []) if not c.get("ok")]
    if report.get("ok"):
        return Check("lean selftest", "ok", f"passed {when} (sandbox {report.get('sandbox')}, judge {report.get('judge')})")
    return Check("lean selftest", "fail", f"failed {when}: {', '.join(short)}", fix + " (after fixing what it names)")


_SANDBOX_FIXES = {
    "bwrap": "install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces "
             "(Ubuntu 24.04: an AppArmor profile for bwrap, or sysctl kernel.apparmor_restrict_unprivileged_userns=0)",
    "landlock": "use a kernel with Landlock enabled (Linux 5.13+, `landlock` in the lsm= boot parameter)",
    "sandbox-exec": "/usr/bin/sandbox-exec ships with macOS",
}


def _disk_and_cache(paths: Paths) -> list[Check]:
    from proverctl.models.hub import human_bytes, offline

    checks = []
    for label, path in (("free disk (data)", paths.data_dir), ("free disk (HF cache)", paths.hf_cache)):
        probe = existing_ancestor(path)
        free = shutil.disk_usage(probe).free
        ok = free >= MIN_FREE_GB * 1e9
        checks.append(Check(label, "ok" if ok else "warn", f"{human_bytes(free)} free at {probe}",
                            None if ok else "a 7B model needs ~14 GB and Mathlib ~5 GB; free some space"))
    checks.append(Check("HF cache", "ok", str(paths.hf_cache) + (" (HF_HUB_OFFLINE: cached files only)" if offline() else "")))
    return checks


def run_doctor(*, smoke: bool = True) -> list[Check]:
    settings = Settings.load()
    paths = Paths.resolve()
    checks = _python() + _gpu() + _lean(settings, paths) + _sandbox(settings, paths) + [_selftest(settings, paths)]
    if smoke:
        checks.append(_repl_smoke(settings, paths))
    checks += _disk_and_cache(paths)
    return checks
