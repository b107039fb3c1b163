"""The proof cache: a statement proved once is not sampled again.

The key is what decides the answer: the statement (without its name, whitespace collapsed), its
header (imports, opens, options and every earlier declaration it can see: the header's text with the
proofs of earlier theorems left out, by hash), the Lean profile with its toolchain and Mathlib
revision, and the judge's label. Two different headers, profiles or judges never share an entry.

A hit is a candidate, never a verdict: the cached proof is put under this target's statement and name
and checked again by today's verifier and judge before it counts; it is recorded as a `cached` attempt
naming its source attempt. One that no longer checks drops its entry, and the target is sampled as usual.
Entries are written for every proved target of a run when it ends (interrupted or not). `--no-cache`
turns both off; `proverctl cache stats|prune|clear` looks after it.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Callable

from proverctl.inputs import header_hash
from proverctl.lean.targets import Target, proof_body, statement_key
from proverctl.store.db import AttemptRow, Store

CACHED_SAMPLE = -2  # the sample number of attempts answered from the cache (no sample of the budget)


def visible_header(header: str) -> str:
    """What a header lets a statement see: its text with every earlier theorem's proof left out (a
    theorem's proof cannot change what a later one means, a `def`'s body can, so it stays), layout
    collapsed. An earlier lemma proved or still `sorry` is the same header to the cache."""
    from proverctl.lean.source import parse

    out, last = [], 0
    for decl in parse(header).declarations:
        if decl.kind in ("theorem", "lemma") and decl.body_start is not None:
            out.append(header[last:decl.body_start])
            out.append(" _")
            last = decl.end
    out.append(header[last:])
    return " ".join("".join(out).split())


def cache_key(statement: str, header: str, pins: str, judge: str) -> str:
    base = statement_key(statement, header_hash(visible_header(header)))
    return hashlib.sha256(f"{base}\0{pins}\0{judge}".encode("utf-8")).hexdigest()[:32]


class ProofCache:
    def __init__(self, store: Store, lean_profile: str | None, judge: str) -> None:
        from proverctl.lean.workspace import profile_pins

        self.store, self.lean_profile, self.judge = store, lean_profile, judge
        self.pins = profile_pins(lean_profile)

    def key(self, target: Target) -> str:
        return cache_key(target.statement, target.header, self.pins, self.judge)

    async def answer(self, items: list[tuple[int, Target]], proved: set[int], verifier, notify: Callable[[str], None]) -> int:
        """Answer what the cache holds, each re-judged; adds the answered targets to `proved`; returns the
        number of hits that checked."""
        found = []
        for target_id, target in items:
            if target_id in proved:
                continue
            key = self.key(target)
            cached = self.store.cache_get(key)
            body = proof_body(cached["code"]) if cached is not None and cached.get("code") else None
            if body is not None:
                found.append((target_id, target, key, cached, target.candidate(body)))
        slots = asyncio.Semaphore(max(1, int(getattr(verifier, "capacity", 4) or 4)))  # as many checks at once as the verifier runs

        async def judge(target, candidate):
            async with slots:
                return await verifier.verify(target, candidate)

        verdicts = await asyncio.gather(*(judge(target, candidate) for _, target, _, _, candidate in found))
        hits = 0
        for (target_id, target, key, cached, candidate), verdict in zip(found, verdicts):
            reasons = [f"from the proof cache: attempt a{cached['id']}"] + verdict.reasons
            self.store.add_attempt(AttemptRow(target_id, CACHED_SAMPLE, 0, None, None, candidate, verdict.kind.value, reasons,
                                              [m.as_dict() for m in verdict.messages], verify_seconds=round(verdict.seconds, 3),
                                              kind="cached", judge=verdict.judge, sandbox=verdict.sandbox, axioms=verdict.axioms),
                                   proved=verdict.proved)
            if verdict.proved:
                self.store.cache_hit(key)
                self.store.set_target(target_id, status="proved")
                proved.add(target_id)
                hits += 1
            else:
                self.store.cache_drop(key)  # it no longer checks: sample the target as usual
                notify(f"{target.display_name}: its cached proof no longer checks ({verdict.reasons[0] if verdict.reasons else verdict.kind.value}); "
                       "sampling it")
        return hits

    def remember(self, run_id: int) -> int:
        """An entry for every proved target of the run (its proving attempt)."""
        count = 0
        for t in self.store.targets(run_id):
            if t["status"] != "proved" or not t.get("proved_attempt"):
                continue
            key = cache_key(t["statement"], t.get("header") or "", self.pins, self.judge)
            self.store.cache_put(key, t["proved_attempt"], lean_profile=self.lean_profile, pins=self.pins, judge=self.judge)
            count += 1
        return count
