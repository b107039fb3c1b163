"""`bench NAME --replay PUBLISHED`: a published set of per-problem proofs re-judged by today's pre-filter
and judge, with no model: each problem's published proof stands in for the model's one sample, and
the run is a normal recorded run (`show`, `runs diff`, `export`).

PUBLISHED is a folder or a .zip of `.lean` files named after their problems (DeepSeek-Prover-V2's
`minif2f-solutions.zip`), or a .jsonl (or a .zip holding one) of rows with a `name` and the proof in
one of `correct_proof` (Kimina-Prover's `minif2f_test_solved.jsonl`), `proof`, `full_code`, `code`,
`formal_proof`, or a raw model output (`output`, `cot`, `raw_output`, `response`: its last ```lean
block is the proof).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from proverctl.errors import UsageError
from proverctl.inference.client import Completion

PROOF_FIELDS = ("correct_proof", "proof", "full_code", "code", "formal_proof")
OUTPUT_FIELDS = ("output", "cot", "raw_output", "response")
_BLOCK = re.compile(r"```(?:lean4?|Lean4?)?\s*\n(.*?)```", re.S)


def _from_rows(text: str, label: str, out: dict[str, str]) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UsageError(f"{label}:{number}: not a JSON line", hint="each line of a published .jsonl is one JSON object") from None
        name = row.get("name") or row.get("problem_name") or row.get("problem_id") if isinstance(row, dict) else None
        if not isinstance(name, str):
            raise UsageError(f"{label}:{number}: the row has no `name`", hint="each row needs the problem's name and its proof")
        proof = next((row[f] for f in PROOF_FIELDS if isinstance(row.get(f), str) and row[f].strip()), None)
        if proof is None:
            output = next((row[f] for f in OUTPUT_FIELDS if isinstance(row.get(f), str)), None)
            blocks = _BLOCK.findall(output or "")
            proof = blocks[-1] if blocks else None
        if proof is None:
            raise UsageError(f"{label}:{number}: no proof in the row",
                             hint=f"give it in one of {', '.join(PROOF_FIELDS + OUTPUT_FIELDS)}")
        out.setdefault(name, proof)


def read_published(path: Path) -> dict[str, str]:
    """Problem name -> the published proof (a whole Lean file or a theorem)."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder", hint="--replay takes a folder, a .zip or a .jsonl of published proofs")
    out: dict[str, str] = {}
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.suffix == ".lean":
                out.setdefault(file.stem, file.read_text(encoding="utf-8", errors="replace"))
            elif file.suffix == ".jsonl":
                _from_rows(file.read_text(encoding="utf-8"), str(file), out)
    elif path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                for name in sorted(archive.namelist()):
                    if name.endswith(".lean"):
                        out.setdefault(Path(name).stem, archive.read(name).decode("utf-8", errors="replace"))
                    elif name.endswith(".jsonl"):
                        _from_rows(archive.read(name).decode("utf-8"), f"{path}!{name}", out)
        except zipfile.BadZipFile:
            raise UsageError(f"{path}: not a zip archive", hint="--replay takes a folder, a .zip or a .jsonl") from None
    elif path.suffix in (".jsonl", ".json"):
        _from_rows(path.read_text(encoding="utf-8"), str(path), out)
    else:
        raise UsageError(f"{path}: not a folder, .zip or .jsonl", hint="--replay takes a folder, a .zip or a .jsonl of published proofs")
    if not out:
        raise UsageError(f"{path}: holds no proofs", hint="expected .lean files named after their problems, or rows with name and proof")
    return out


class ReplayGenerator:
    """Stands in for the engine: the published proof of the problem a prompt is for (the last theorem the
    prompt names), once; a problem with no published proof gets an empty answer (recorded as such)."""

    def __init__(self, proofs: dict[str, str]) -> None:
        self.proofs = proofs

    async def complete(self, prompt, seed=None) -> Completion:
        text = prompt.text if prompt.text is not None else "\n".join(m.get("content", "") for m in prompt.messages or [])
        names = re.findall(r"(?:theorem|lemma)\s+([^\s({\[:]+)", text)
        proof = self.proofs.get(names[-1]) if names else None
        answer = f"```lean4\n{proof.strip()}\n```" if proof is not None else ""
        return Completion(answer, "stop", 0, 0, 0.0, seed)
