"""The attempt writer (proverctl.store.writer): a run's attempts committed in batches by a thread of
its own, a proving attempt in the store before its future resolves, a failed commit stopping what
follows, and everything handed over in the store after close."""

from __future__ import annotations

import asyncio

import pytest

from proverctl.store.db import AttemptRow, Store, StoreError
from proverctl.store.writer import AttemptWriter


@pytest.fixture()
def target(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store:
        run_id = store.create_run(kind="prove", command="t", input="x", model=None, revision=None, engine=None, endpoint=None,
                                  lean_profile=None, settings={})
        (target_id,) = store.add_targets(run_id, [{"file": "x", "name": "t", "kind": "theorem", "line": 1, "statement": "theorem t : True",
                                                  "doc": None, "header": "", "header_hash": "h", "hint": None}])
    return path, target_id


def row(target_id: int, sample: int) -> AttemptRow:
    return AttemptRow(target_id, sample, 0, {"messages": [{"role": "user", "content": "p"}]}, "out", "code", "rejected", ["no"], [])


def test_rows_are_committed_in_batches_and_all_are_there_after_close(target):
    path, target_id = target

    async def go():
        with Store(path) as reader:
            before = reader.db.execute("PRAGMA data_version").fetchone()[0]
            writer = AttemptWriter(path, interval=0.2)
            futures = [writer.add(row(target_id, i)) for i in range(200)]
            await writer.close()
            ids = [f.result() for f in futures]
            after = reader.db.execute("PRAGMA data_version").fetchone()[0]
            return ids, after - before, writer.committed

    ids, commits, committed = asyncio.run(go())
    assert committed == 200 and len(set(ids)) == 200
    assert commits < 20  # 200 rows handed over at once: a few transactions, not 200
    with Store(path) as store:
        assert len(store.attempts(target_id)) == 200


def test_a_proving_row_is_in_the_store_when_its_future_resolves(target):
    path, target_id = target

    async def go():
        writer = AttemptWriter(path, interval=5.0)  # a batch would wait 5 s: a proof must not
        with Store(path) as reader:
            writer.add(row(target_id, 0))
            attempt_id = await asyncio.wait_for(writer.add(row(target_id, 1), proved=True), 2.0)
            seen = reader.target(target_id)
        await writer.close()
        return attempt_id, seen

    attempt_id, seen = asyncio.run(go())
    assert seen["status"] == "proved" and seen["proved_attempt"] == attempt_id


def test_what_is_waited_for_never_waits_for_the_interval_even_behind_full_batches(target):
    """Rows that can wait wake no one (the thread waits on a hurry flag, not on the queue); a proving row,
    a flush and the stop set it, and a full batch leaves it set for what is still queued."""
    path, target_id = target

    async def go():
        writer = AttemptWriter(path, interval=5.0, batch=4)
        futures = [writer.add(row(target_id, i)) for i in range(10)]
        proved = await asyncio.wait_for(writer.add(row(target_id, 10), proved=True), 2.0)
        later = [writer.add(row(target_id, i)) for i in range(11, 14)]
        await asyncio.wait_for(writer.flush(), 2.0)
        assert all(f.done() for f in futures + later)
        await asyncio.wait_for(writer.close(), 2.0)
        return proved, writer.committed

    proved, committed = asyncio.run(go())
    assert committed == 14
    with Store(path) as store:
        assert store.target(target_id)["proved_attempt"] == proved


def test_a_failed_commit_fails_its_batch_and_every_later_add(target):
    path, target_id = target

    async def go():
        writer = AttemptWriter(path)
        good = await writer.add(row(target_id, 0), proved=True)
        bad = writer.add(row(target_id + 999, 1))  # no such target: the foreign key refuses the row
        with pytest.raises(StoreError):
            await bad
        with pytest.raises(StoreError):
            writer.add(row(target_id, 2))
        with pytest.raises(StoreError):
            await writer.close()
        return good

    good = asyncio.run(go())
    with Store(path) as store:
        assert [a["id"] for a in store.attempts(target_id)] == [good]  # what was committed before stays


def test_every_future_of_a_batch_is_settled_even_with_an_error_futures_refuse():
    """The writer hands a batch's results to the loop in one call: an error that set_exception refuses
    (StopIteration) must not leave the futures after it waiting for ever."""
    from proverctl.store.writer import _settle

    async def go():
        loop = asyncio.get_running_loop()
        first, flushed = loop.create_future(), loop.create_future()
        _settle([(first, None, StopIteration()), (flushed, None, None)])
        assert flushed.done() and flushed.result() is None
        with pytest.raises(RuntimeError, match="writer failed"):
            await first

    asyncio.run(go())
