"""Attempts committed off the event loop, in batches.

A commit per attempt on the loop's thread costs a transaction each, and the one that hits a WAL
checkpoint holds the loop for hundreds of milliseconds (bench/attempt_cpu.py). An AttemptWriter owns a
thread with its own connection to the same store: the loop hands it rows and goes on, and the thread
commits whatever has queued in one transaction, at least every `interval` seconds (a quarter of a
second: each commit has a cost of its own, a fifth of the writer's CPU at 50 ms). A caller that needs
the row in the store before it goes on (an attempt that proves its target: whoever waits on that
target reads it next) awaits `add`'s future; `flush` waits for everything handed over.

A batch that cannot be written (disk full, the store locked past its timeout) is written again one row
at a time, so every row that fits is kept; the first row that fails fails the rest and every later
`add`, so the run stops on the first failure, as it did when it committed on the loop. A killed process
loses at most the rows of the last `interval`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path

from proverctl.store.db import AttemptRow, Store

_STOP = object()


class AttemptWriter:
    """Use as `writer = AttemptWriter(path); fut = writer.add(row, proved); await writer.close()`."""

    def __init__(self, path: Path, *, interval: float = 0.25, batch: int = 256) -> None:
        self.path = Path(path)
        self.interval = interval
        self.batch = batch
        self.failure: BaseException | None = None
        self.committed = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # Set for what must not wait for the interval (a proving row, a flush, the stop). The thread waits
        # on this, not on the queue: a row that can wait wakes nobody (it woke for every row before).
        self._hurry = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proverctl-store-writer", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self.failure is not None:
            raise self.failure

    def add(self, row: AttemptRow, proved: bool = False) -> asyncio.Future:
        """Hand one attempt over; the future gets its id once it is committed (or the commit's error).
        A row that proves its target is committed at once: await the future before anyone reads it."""
        if self.failure is not None:
            raise self.failure
        future = self._loop.create_future()
        self._queue.put((row, proved, future))
        if proved:
            self._hurry.set()
        return future

    async def flush(self) -> None:
        """Wait until everything handed over so far is committed (raises the writer's failure)."""
        future = self._loop.create_future()
        self._queue.put((None, False, future))
        self._hurry.set()
        await future
        if self.failure is not None:
            raise self.failure

    async def close(self) -> None:
        """Commit what is queued and stop the thread (raises the writer's failure, once)."""
        try:
            await self.flush()
        finally:
            self._queue.put(_STOP)
            self._hurry.set()
            await asyncio.to_thread(self._thread.join)

    # -- the writer's thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            store = Store(self.path)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop's side
            self.failure = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            stopping = False
            while not stopping:
                items = [self._queue.get()]
                # What else arrives within the interval joins the batch; a row someone waits for (or a
                # flush, or the stop) goes at once, with whatever has queued before and behind it.
                if not _urgent(items[0]):
                    self._hurry.wait(self.interval)
                self._hurry.clear()  # before the queue is read: a later hurry is seen by the next batch
                while len(items) < self.batch:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if len(items) == self.batch:
                    self._hurry.set()  # more may be queued (a row someone waits for among it): no waiting for it
                if any(item is _STOP for item in items):
                    stopping = True
                    items = [item for item in items if item is not _STOP]
                self._commit(store, items)
        finally:
            store.close()

    def _commit(self, store: Store, items: list) -> None:
        rows = [(row, proved) for row, proved, _ in items if row is not None]
        ids: list[int | None] = []
        if rows and self.failure is None:
            try:
                ids = store.add_attempts(rows)
            except BaseException:  # noqa: BLE001 - a batch that cannot be written: keep every row that can
                ids = []
                for one in rows:
                    if self.failure is not None:
                        ids.append(None)
                        continue
                    try:
                        ids.extend(store.add_attempts([one]))
                    except BaseException as exc:  # noqa: BLE001 - handed to the loop's side
                        self.failure = exc
                        ids.append(None)
            self.committed += sum(i is not None for i in ids)
        results = iter(ids)
        outcomes = []
        for row, _, future in items:
            if row is None:  # a flush marker
                outcomes.append((future, None, None))
                continue
            attempt_id = next(results, None)
            outcomes.append((future, attempt_id, self.failure if attempt_id is None else None))
        # One hand-over per batch: each call wakes the loop and is a step of its own there.
        if outcomes:
            self._loop.call_soon_threadsafe(_settle, outcomes)


def _urgent(item) -> bool:
    return item is _STOP or item[0] is None or item[1]


def _settle(outcomes: list[tuple[asyncio.Future, int | None, BaseException | None]]) -> None:
    for future, value, error in outcomes:
        if future.done():
            continue
        if error is not None:
            if isinstance(error, StopIteration):  # set_exception refuses it, and the rest of the batch would wait for ever
                error = RuntimeError(f"the store's writer failed: {error!r}")
            future.set_exception(error)
            future.exception()  # marked seen: a failure nobody awaits surfaces at the next add or flush, not in a log
        else:
            future.set_result(value)
