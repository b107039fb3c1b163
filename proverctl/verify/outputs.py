"""`proverctl check OUTPUTS.jsonl`: generations made elsewhere, extracted, re-spliced and checked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from proverctl.errors import UsageError
from proverctl.lean.targets import Target, from_row
from proverctl.lean.verdict import Verdict, VerdictKind
from proverctl.prompts import families
from proverctl.prompts.extract import extract
from proverctl.prompts.families import Family


@dataclass
class OutputRow:
    line: int
    target: Target
    output: str
    family: Family


def parse_outputs(text: str, label: str, *, default_family: str | None = None) -> list[OutputRow]:
    """Validate every row before any work starts: one bad row stops the command with its line number."""
    default = families.get(default_family or families.DEFAULT)
    from proverctl.inputs import json_rows

    rows = []
    for number, where, data in json_rows(text, label):
        output = data.get("output")
        if not isinstance(output, str):
            raise UsageError(f"{where}: no `output` string", hint="rows need {name, formal_statement, output}")
        try:
            family = families.get(data["family"]) if data.get("family") else default
        except UsageError as exc:
            raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None
        rows.append(OutputRow(number, from_row(data, where), output, family))
    if not rows:
        raise UsageError(f"{label} has no rows", hint="one JSON object per line")
    return rows


def extract_rows(rows: list[OutputRow], *, allow_aux: bool = False) -> list[dict]:
    out = []
    for row in rows:
        extraction = extract(row.output, row.target, row.family, allow_aux=allow_aux)
        out.append({
            "name": row.target.display_name,
            "line": row.line,
            "code": row.target.header + extraction.code if extraction.ok else None,
            "reason": extraction.reason,
        })
    return out


async def check_rows(verifier, rows: list[OutputRow], *, allow_aux: bool = False) -> list[dict]:
    """Extract, re-splice and check every row with `verifier` (from proverctl.verify.factory)."""
    async def one(row: OutputRow) -> dict:
        extraction = extract(row.output, row.target, row.family, allow_aux=allow_aux)
        if not extraction.ok:
            verdict = Verdict(VerdictKind.rejected, [extraction.reason], judge="extraction")
        else:
            verdict = await verifier.verify(row.target, extraction.code)
        data = {"name": row.target.display_name, "line": row.line}
        data.update(verdict.as_dict())
        data["_record"] = {"name": row.target.name, "kind": row.target.kind, "line": row.line, "statement": row.target.statement,
                           "header": row.target.header, "doc": row.target.doc, "code": extraction.code, "raw_output": row.output}
        return data

    return list(await asyncio.gather(*(one(row) for row in rows)))
