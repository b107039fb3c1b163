"""The model store against a loopback hub, driving huggingface_hub's real download code."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hubserver import Fault
from tinymodel import tiny_files, tiny_repo

REPO = "deepseek-ai/DeepSeek-Prover-V2-7B"
WANTED = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"}


def snapshot_files(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


def test_pull_alias_downloads_only_inference_files(cli, hub):
    result = cli("pull", "deepseek-prover-v2-7b")  # no --format, stdout a pipe: as in $(proverctl pull ...)
    assert result.exit_code == 0, result
    assert len(result.stdout.splitlines()) == 1  # only the snapshot path
    path = Path(result.stdout.strip())
    assert path.is_dir() and path.name == hub.repos[REPO].commit
    assert snapshot_files(path) == WANTED
    for name in WANTED:
        assert (path / name).read_bytes() == hub.repos[REPO].files[name]
    assert "5 files" in result.stderr


def test_pull_json_and_second_pull_downloads_nothing(cli, hub):
    first = cli("pull", REPO, "--format", "json").json()
    assert first["downloaded_bytes"] == sum(len(hub.repos[REPO].files[n]) for n in WANTED)
    gets_before = sum(1 for r in hub.requests if r["method"] == "GET" and "/resolve/" in r["path"])
    second = cli("pull", REPO, "--format", "json").json()
    assert second["already_present"] is True and second["downloaded_bytes"] == 0
    gets_after = sum(1 for r in hub.requests if r["method"] == "GET" and "/resolve/" in r["path"])
    assert gets_after == gets_before


def test_pull_pins_revision_by_branch_and_commit(cli, hub):
    other = "fedcba9876543210fedcba9876543210fedcba98"
    hub.repos[REPO].branches["v1"] = other
    hub.repos[REPO].commit = other  # the server accepts this commit hash now too
    by_branch = cli("pull", f"{REPO}@v1", "--format", "json").json()
    assert by_branch["commit"] == other and Path(by_branch["path"]).name == other
    by_commit = cli("pull", f"deepseek-prover-v2-7b@{other}", "--format", "json").json()
    assert by_commit["path"] == by_branch["path"]
    missing = cli("pull", f"{REPO}@no-such-branch")
    assert missing.exit_code == 2 and "revision 'no-such-branch'" in missing.stderr


BIG = 12_000_000  # over huggingface_hub's 10 MB streaming chunk, so a partial file exists
DROP = 10_500_000
CHUNK = 10 * 1024 * 1024


def test_pull_resumes_after_connection_drop_mid_file(cli, hub):
    hub.add(tiny_repo(REPO, big=BIG))
    hub.faults["model.safetensors"] = Fault(drop_after=DROP, times=1)
    result = cli("pull", REPO, "--format", "json")
    assert result.exit_code == 0, result
    ranges = [r["range"] for r in hub.requests if r["path"].endswith("model.safetensors") and r["range"]]
    assert ranges == [f"bytes={CHUNK}-"]
    data = (Path(result.json()["path"]) / "model.safetensors").read_bytes()
    assert hashlib.sha256(data).digest() == hashlib.sha256(hub.repos[REPO].files["model.safetensors"]).digest()


def test_failed_pull_then_rerun_fetches_only_what_is_missing(cli, hub):
    """huggingface_hub 2.x resumes a dropped transfer within one run (above) but deletes its partial
    temp file when the run fails; a re-run then fetches only the files that are not complete."""
    hub.add(tiny_repo(REPO, big=BIG))
    hub.faults["model.safetensors"] = Fault(drop_after=DROP, times=1, then_status=503)
    failed = cli("pull", REPO)
    assert failed.exit_code == 3, failed
    assert "the hub answered 503" in failed.stderr and "Traceback" not in failed.stderr
    del hub.faults["model.safetensors"]
    hub.requests.clear()
    result = cli("pull", REPO, "--format", "json")
    assert result.exit_code == 0, result
    fetched = [r["path"].rsplit("/", 1)[-1] for r in hub.requests if r["method"] == "GET" and "/resolve/" in r["path"]]
    assert fetched == ["model.safetensors"]
    assert result.json()["downloaded_bytes"] == len(hub.repos[REPO].files["model.safetensors"])
    data = (Path(result.json()["path"]) / "model.safetensors").read_bytes()
    assert data == hub.repos[REPO].files["model.safetensors"]
    leftovers = [p for p in Path(result.json()["path"]).parents[1].rglob("*.incomplete")]
    assert leftovers == []


def test_pull_unknown_repo_is_404_usage_error(cli, hub):
    result = cli("pull", "nobody/nothing")
    assert result.exit_code == 2
    assert "nobody/nothing not found on the hub (404)" in result.stderr


def test_pull_unknown_alias_suggests_closest(cli):
    result = cli("pull", "deepseek-prover-v2-7")
    assert result.exit_code == 2
    assert "unknown model 'deepseek-prover-v2-7'" in result.stderr
    assert "did you mean deepseek-prover-v2-7b" in result.stderr


def test_pull_gated_repo_says_how_to_give_a_token(cli, hub, monkeypatch):
    hub.add(tiny_repo("org/gated", gated=True, token="hf_secret"))
    result = cli("pull", "org/gated")
    assert result.exit_code == 3
    assert "gated" in result.stderr and "HF_TOKEN" in result.stderr
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    ok = cli("pull", "org/gated", "--format", "json")
    assert ok.exit_code == 0, ok
    assert any(r["auth"] == "Bearer hf_secret" for r in hub.requests)


def test_pull_network_unreachable(cli, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    result = cli("pull", "deepseek-prover-v2-7b")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: cannot reach the Hugging Face hub")
    assert "Traceback" not in result.stderr


def test_offline_mode_without_and_with_files(cli, hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = cli("pull", "deepseek-prover-v2-7b")
    assert missing.exit_code == 3 and "HF_HUB_OFFLINE" in missing.stderr
    assert hub.requests == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    online = cli("pull", "deepseek-prover-v2-7b", "--format", "json").json()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.requests.clear()
    offline = cli("pull", "deepseek-prover-v2-7b", "--format", "json")
    assert offline.exit_code == 0, offline
    assert offline.json()["path"] == online["path"]
    assert hub.requests == []


def test_not_enough_disk_refuses_before_downloading(cli, hub, monkeypatch):
    import proverctl.models.hub as store

    monkeypatch.setattr(store, "_free_bytes", lambda path: 10_000)
    result = cli("pull", "deepseek-prover-v2-7b")
    assert result.exit_code == 3
    assert "not enough disk" in result.stderr and "to download" in result.stderr
    assert not any(r["method"] == "GET" and "/resolve/" in r["path"] for r in hub.requests)


def test_list_show_verify_rm(cli, hub):
    pulled = cli("pull", "deepseek-prover-v2-7b", "--format", "json").json()
    rows = cli("list", "--format", "json").json()
    assert [(r["alias"], r["repo_id"], r["revision"]) for r in rows] == [("deepseek-prover-v2-7b", REPO, pulled["commit"])]
    assert rows[0]["size_on_disk"] == pulled["total_bytes"]

    shown = cli("models", "show", "deepseek-prover-v2-7b", "--context", "100", "--format", "json").json()
    assert shown["pulled"] is True
    assert shown["config"]["num_layers"] == 2 and shown["config"]["num_key_value_heads"] == 1
    # KV per token: 2 (k,v) x 2 layers x 1 kv head x head_dim 8 x 2 bytes
    assert shown["memory"]["kv_bytes_per_token"] == 2 * 2 * 1 * 8 * 2

    ok = cli("models", "verify", "deepseek-prover-v2-7b", "--format", "json")
    assert ok.exit_code == 0, ok
    assert set(ok.json()["ok_files"]) == WANTED

    weights = Path(pulled["path"]) / "model.safetensors"
    blob = weights.resolve()
    data = bytearray(blob.read_bytes())
    data[5000] ^= 0xFF
    blob.write_bytes(bytes(data))
    bad = cli("models", "verify", "deepseek-prover-v2-7b", "--format", "json")
    assert bad.exit_code == 1
    assert [m["path"] for m in bad.json()["mismatches"]] == ["model.safetensors"]

    dry = cli("rm", "deepseek-prover-v2-7b", "--dry-run", "--format", "json")
    assert dry.exit_code == 0 and dry.json()["dry_run"] is True
    assert Path(pulled["path"]).is_dir()
    refused = cli("rm", "deepseek-prover-v2-7b")  # CliRunner's stdin is not a terminal
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    gone = cli("models", "rm", "deepseek-prover-v2-7b", "--yes", "--format", "json")
    assert gone.exit_code == 0 and gone.json()["freed_bytes"] > 0
    assert not Path(pulled["path"]).exists()
    assert cli("list", "--format", "json").json() == []
    again = cli("rm", "deepseek-prover-v2-7b", "--yes")
    assert again.exit_code == 3 and "not in the local cache" in again.stderr  # as `models verify` says it


def test_show_and_verify_of_unpulled_model(cli):
    shown = cli("models", "show", "deepseek-prover-v2-7b", "--format", "json").json()
    assert shown["pulled"] is False and shown["config"] is None
    # Catalog facts give an estimate before pulling: 30 layers x 32 heads x 128 dims x 2 (k, v) x 2 bytes.
    assert shown["memory"]["kv_bytes_per_token"] == 30 * 32 * 128 * 2 * 2
    result = cli("models", "verify", "deepseek-prover-v2-7b")
    assert result.exit_code == 3 and "proverctl pull deepseek-prover-v2-7b" in result.stderr


def test_local_directory_reference(cli, tmp_path):
    model = tmp_path / "mymodel"
    model.mkdir()
    for name, data in tiny_files().items():
        if "/" not in name:
            (model / name).write_bytes(data)
    shown = cli("models", "show", str(model), "--format", "json").json()
    assert shown["pulled"] is True and shown["config"]["architecture"] == "LlamaForCausalLM"
    not_model = cli("models", "show", str(tmp_path))
    assert not_model.exit_code == 2 and "no config.json" in not_model.stderr
    missing = cli("models", "show", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    rm = cli("rm", str(model), "--yes")
    assert rm.exit_code == 2 and model.is_dir()


@pytest.mark.skipif(__import__("shutil").which("script") is None, reason="util-linux `script` not installed")
def test_pull_on_a_terminal_draws_rich_progress(hub, hermetic):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_ENDPOINT=hub.url)
    cmd = f"{sys.executable} -m proverctl pull deepseek-prover-v2-7b"
    proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "pulling deepseek-prover-v2-7b" in proc.stdout and "B/s" in proc.stdout  # proverctl's one rich bar
    # no huggingface_hub bars beside it (the dry run's "Fetching N files", their cursor-up codes) and no
    # "Download complete: 0.00B" after the path
    assert "Fetching" not in proc.stdout and "\x1b[A" not in proc.stdout and "Download complete" not in proc.stdout
    assert proc.stdout.rstrip().endswith(hub.repos[REPO].commit)  # the snapshot path is the last line
