"""Writing proofs back: into a file (`--in-place`), into `-o FILE`, or into `-o DIR` mirroring a folder.

Nothing the user had is lost: each write is atomic (a temp file in the same folder, then rename), an
in-place write first keeps the original as `FILE.run<N>.bak` (one per run, never overwritten), and the
proofs are spliced into the file's *current* text, so two runs writing one file keep each other's proofs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from proverctl.errors import UsageError
from proverctl.inputs import InputFile
from proverctl.lean.targets import completed_text


@contextmanager
def atomic_file(destination: Path, *, like: Path | None = None, binary: bool = False) -> Iterator[TextIO]:
    """A text (or, with `binary`, bytes) handle whose content replaces `destination` all at once when the
    block ends (readers see the old file or the new one, never half); nothing is replaced when the block
    raises. With `like`, the new file gets that file's permissions."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".proverctl-tmp", dir=destination.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as handle:
            yield handle
        if like is not None and like.exists():
            shutil.copymode(like, tmp)
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(destination: Path, text: str, *, like: Path | None = None) -> None:
    """Write `text` to `destination` all at once (see atomic_file)."""
    with atomic_file(destination, like=like) as handle:
        handle.write(text)


def backup_path(path: Path, run_id: int) -> Path:
    return path.with_name(f"{path.name}.run{run_id}.bak")


def check_dataset_output(inputs: list[InputFile], *, in_place: bool, output: str | None, fmt: str | None) -> None:
    """A dataset is written out as a dataset (-o OUT.jsonl), never edited in place or printed as Lean."""
    dataset = next((f for f in inputs if f.is_dataset), None)
    if dataset is None:
        return
    hint = "use -o OUT.jsonl: each row with its proof, status and how it was checked"
    if in_place:
        raise UsageError(f"--in-place cannot rewrite the dataset {dataset.label}", hint=hint)
    if fmt == "lean":
        raise UsageError(f"--format lean prints a Lean file, and {dataset.label} is a dataset", hint=hint + " (or --format json)")
    if output is not None:
        if not output.endswith(".jsonl"):
            raise UsageError(f"-o {output}: a dataset is written as a .jsonl file", hint=hint)
        if dataset.source is not None and Path(output).resolve() == dataset.source.resolve():
            raise UsageError(f"-o {output} is the dataset itself", hint="write the results to another .jsonl file")
        if not Path(output).parent.exists():
            raise UsageError(f"cannot write to {output}: {Path(output).parent} does not exist", hint="create the directory first")


def write_dataset(dataset: InputFile, results: list[dict], output: str) -> str:
    """The dataset's rows (those the run had as targets), each with the run's `status`, `proof`, `checked`,
    `kernel_checked`, `judge` and `run` added, one JSON object per line; written atomically."""
    import json

    by_line = {r["line"]: r for r in results if r.get("file") == dataset.label}
    lines = []
    for number, row in (dataset.rows or {}).items():
        result = by_line.get(number)
        if result is None:
            continue  # not a target of this run (--theorem)
        out = dict(row)
        out.update({"status": result["status"], "proof": result["proof"], "checked": result["checked"],
                    "kernel_checked": result["kernel_checked"], "judge": result["judge"], "run": result["run"]})
        lines.append(json.dumps(out, ensure_ascii=False))
    atomic_write(Path(output), "\n".join(lines) + ("\n" if lines else ""))
    return output


def check_output(output: str | None, inputs: list[InputFile], input_name: str | None) -> None:
    """Refuse an output that would lose files, before any work starts."""
    if output is None or any(f.is_dataset for f in inputs):
        return
    out = Path(output)
    folder_input = input_name is not None and Path(input_name).is_dir()
    if folder_input:
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o {output} is a file but the input is a folder", hint="give a folder (it is created if missing)")
        if not out.exists() and not _existing_parent(out):
            raise UsageError(f"cannot create {output}: none of its parent folders exist", hint="check the path")
        return
    if len([f for f in inputs if f.text is not None]) > 1 and not out.is_dir():
        raise UsageError(f"-o {output} must be a folder for several inputs", hint="create the folder first")
    if not out.parent.exists():
        raise UsageError(f"cannot write to {output}: {out.parent} does not exist", hint="create the directory first")


def _existing_parent(path: Path) -> bool:
    return any(parent.is_dir() for parent in path.parents)


def destination_for(file: InputFile, output: Path, input_name: str | None) -> Path:
    """Where a file's completed text goes under `-o`: the same relative path for a folder input (the
    tree is mirrored), `output/NAME` when `output` is a folder, else `output` itself."""
    if input_name is not None and Path(input_name).is_dir() and file.path is not None:
        return output / file.path.relative_to(Path(input_name))
    if output.is_dir():
        return output / Path(file.label).name if file.label != "<stdin>" else output / "stdin.lean"
    return output


def _inside(path: Path, root: Path) -> bool:
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == base or base in real.parents


def _make_backup(path: Path, backup: Path) -> str | None:
    """Keep `path`'s current bytes as `backup`, created exclusively and never through a link (a `.bak`
    that already exists as a file of this run is kept); why not, when it cannot be made safely."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(backup, flags, 0o600)
    except FileExistsError:
        if backup.is_symlink() or not backup.is_file():
            return f"{backup} exists and is not a plain file"
        return None  # this run's backup, made by an earlier write
    except OSError as exc:
        return f"cannot create {backup}: {exc.strerror}"
    with os.fdopen(fd, "wb") as handle:
        handle.write(path.read_bytes())
    shutil.copymode(path, backup)
    return None


def write_outputs(inputs: list[InputFile], proofs: dict[str, dict[str, str]], *, input_name: str | None, in_place: bool,
                  output: str | None, run_id: int, statements: dict[str, dict[str, str]] | None = None) -> tuple[list[str], list[str]]:
    """Write every file's proved targets (`proofs`: file label -> name -> code) where the request asked.
    Nothing is written through a link that leaves the input (or output) tree, a backup is never
    created through a link, and a target whose statement changed on disk since the run read it
    (`statements`: file label -> name -> statement) is not spliced. Returns (paths written, notes)."""
    written, notes = [], []
    statements = statements or {}
    for file in inputs:
        if file.text is None:
            continue  # a dataset: results go to the report, not to a file
        mine = proofs.get(file.label, {})
        if output is not None:
            destination = destination_for(file, Path(output), input_name)
            root = Path(output) if Path(output).is_dir() or (input_name and Path(input_name).is_dir()) else destination.parent
            if destination.is_symlink() or not _inside(destination.parent, root):
                notes.append(f"not written: {destination} is a link or leads outside {root} (the proofs are in the store)")
                continue
            atomic_write(destination, completed_text(file.text, mine))
            written.append(str(destination))
        elif in_place and file.path is not None and mine:
            root = Path(input_name) if input_name and Path(input_name).is_dir() else file.path.parent
            if file.path.is_symlink() or not _inside(file.path, root):
                notes.append(f"not written: {file.path} is a link or leads outside {root} (the proofs are in the store)")
                continue
            current = file.path.read_text(encoding="utf-8")
            changed: list[str] = []
            new = completed_text(current, mine, statements=statements.get(file.label), changed=changed)
            for name in changed:
                notes.append(f"not written: the statement of {name} in {file.path} changed since the run read it "
                             "(its proof is in the store)")
            if new == current:
                continue
            problem = _make_backup(file.path, backup_path(file.path, run_id))
            if problem:
                notes.append(f"not written: {file.path}: {problem} (the proofs are in the store)")
                continue
            atomic_write(file.path, new, like=file.path)
            written.append(str(file.path))
    return written, notes
