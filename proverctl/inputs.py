"""What `prove` works on: targets from a .lean file, a directory of them, stdin, or a dataset .jsonl."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from proverctl.errors import UsageError
from proverctl.lean.targets import Target, from_row, targets_in_text


@dataclass
class InputFile:
    """One source of targets: `path` is None for stdin and datasets (nothing to write back)."""

    label: str
    path: Path | None
    text: str | None
    targets: list[Target] = field(default_factory=list)
    rows: dict[int, dict] | None = None  # a dataset: its rows by line number (each target's `line` is its row's)
    source: Path | None = None  # a dataset: the file it was read from

    @property
    def is_dataset(self) -> bool:
        return self.rows is not None


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{label} is not UTF-8 text (byte {exc.start})", hint="Lean files are UTF-8; convert the file") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="check the path") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check the path and its permissions") from None


def read_text(name: str) -> tuple[str, str]:
    """(text, label) of one file or of stdin (`-`), bytes decoded as UTF-8 with newlines kept exactly;
    a directory, a missing or unreadable file, or non-UTF-8 bytes are one-line usage errors."""
    if name == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        return _decode(data, "<stdin>"), "<stdin>"
    path = Path(name)
    if path.is_dir():
        raise UsageError(f"{name} is a directory", hint="name a .lean file (or - for standard input)")
    return _decode(_read(path), name), name


def load_text(text: str, label: str, path: Path | None = None) -> InputFile:
    """One Lean text as an input; a `sorry` that no declaration holds (a declaration proverctl cannot
    read) is a usage error naming its line, never "nothing to prove"."""
    from proverctl.lean.source import Source, find_tokens, line_col

    source = Source(text)
    for word, offset in find_tokens(source.mask, ("sorry", "admit")):
        holder = next((d for d in source.declarations if d.full_start <= offset < d.end), None)
        line, _ = line_col(text, offset)
        if holder is None:
            raise UsageError(f"{label}:{line}: `{word}` outside any declaration proverctl can read",
                             hint="declarations start at column 0 with theorem/lemma/def/example...; check the one above this line")
        if holder.body_start is None:  # its `:=` is not at the top level: brackets that do not close
            what = f"{holder.kind} {holder.name}" if holder.name else holder.kind
            raise UsageError(f"{label}:{holder.line}: cannot read the statement of {what} (no `:=` outside its brackets), "
                             f"so its `{word}` (line {line}) is no target",
                             hint="check that its parentheses and brackets close; Lean would refuse it too")
    return InputFile(label, path, text, targets_in_text(text, label))


def lean_files(directory: str) -> list[tuple[str, str]]:
    """(label, text) of every .lean file under a folder (a Lake project's build dirs `.lake` excluded),
    in path order; none is a usage error."""
    files = sorted(p for p in Path(directory).rglob("*.lean") if ".lake" not in p.parts and "lake-packages" not in p.parts)
    if not files:
        raise UsageError(f"{directory} has no .lean files", hint="name a .lean file or a folder of them")
    return [(str(file), _decode(_read(file), str(file))) for file in files]


def load_inputs(name: str, base: Path | None = None) -> list[InputFile]:
    """Parse the input; every problem here is a usage error (exit 2) raised before any work starts. A
    relative `name` is read from `base` (a run's own working directory, so a resume started anywhere reads
    the run's files); labels stay as `name` gives them, paths are where the files are."""
    if name == "-":
        text, label = read_text(name)
        return [load_text(text, label)]
    path = base / name if base is not None else Path(name)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.lean") if ".lake" not in p.relative_to(path).parts)
        if not files:
            raise UsageError(f"{name} has no .lean files", hint="name a .lean file, a folder of them, - or a .jsonl dataset")
        out = []
        for file in files:
            label = str(Path(name) / file.relative_to(path))
            out.append(load_text(_decode(_read(file), label), label, file))
        return out
    text, _ = read_text(str(path))
    if path.suffix == ".jsonl":
        from dataclasses import replace

        rows = {number: row for number, _, row in json_rows(text, name)}
        # a row's target is numbered by its line in the .jsonl: reports say rows.jsonl:40 for row 40
        targets = [replace(from_row(row, f"{name}:{number}"), line=number) for number, row in rows.items()]
        return [InputFile(name, None, None, targets, rows=rows, source=path)]
    return [load_text(text, name, path)]


def json_rows(text: str, label: str):
    """(line number, "label:line", row) for each non-blank line of a JSON-lines text; a line that is not a JSON object is
    a usage error naming its line."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{label}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not a JSON object ({exc.msg})", hint="each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise UsageError(f"{where}: not a JSON object", hint="each line must be one JSON object")
        yield number, where, row


def select(inputs: list[InputFile], names: list[str]) -> None:
    """Keep only the targets named by --theorem (each name must exist)."""
    if not names:
        return
    available = {t.name for f in inputs for t in f.targets}
    missing = [n for n in names if n not in available and not any((t.name or "").endswith("." + n) for f in inputs for t in f.targets)]
    if missing:
        listed = ", ".join(sorted(n for n in available if n)) or "none"
        raise UsageError(f"no target named {missing[0]!r}", hint=f"targets: {listed}")
    for f in inputs:
        f.targets = [t for t in f.targets if t.name in names or any((t.name or "").endswith("." + n) for n in names)]


def header_hash(header: str) -> str:
    return hashlib.sha256(header.encode("utf-8")).hexdigest()[:16]
