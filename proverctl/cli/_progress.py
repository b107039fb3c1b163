"""Rich progress: huggingface_hub downloads, and a counting bar for long store reads (export).

huggingface_hub reports progress through a `tqdm_class`; this adapter keeps tqdm silent and mirrors
each bar's counters into one shared rich Progress on stderr. Used only when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from proverctl.cli._output import stderr


@contextlib.contextmanager
def download_progress(label: str = "downloading") -> Iterator[type]:
    """Yield a tqdm class that draws into a live rich Progress for the duration of the block: one bar,
    the bytes received, named `label` (huggingface_hub's own descriptions, "Download complete" and the
    like, are not shown; a bar with nothing to download is not shown at all)."""
    # Subclassing huggingface_hub's tqdm (not plain tqdm) makes it pass each bar's `name`.
    from huggingface_hub.utils import tqdm as base_tqdm

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        transient=False,
    )

    class RichTqdm(base_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # tqdm itself draws nothing
            super().__init__(*args, **kwargs)
            self.n = kwargs.get("initial", 0) or 0
            self.total = kwargs.get("total")
            self.desc = kwargs.get("desc") or ""
            # snapshot_download keeps two byte bars, "transfer" (network) and "reconstruct" (disk);
            # without Xet they count the same bytes, so show the network one only, once bytes move.
            self._shown = kwargs.get("unit") == "B" and kwargs.get("name") != "huggingface_hub.snapshot_download"
            self._task = progress.add_task(label, total=self.total or None, visible=False)

        def _sync(self) -> None:
            progress.update(self._task, completed=self.n, total=self.total or None, visible=self._shown and self.n > 0)

        def update(self, n=1):
            self.n += n or 0
            self._sync()

        def refresh(self, *args, **kwargs):
            self._sync()

        def set_description(self, desc=None, refresh=True):
            self.desc = desc or ""
            self._sync()

        def close(self):
            self._sync()

    with progress:
        yield RichTqdm


@contextlib.contextmanager
def counting_progress(label: str, total: int) -> Iterator:
    """Yield `advance()`: one step of `total` (attempts read, say), drawn as a bar on stderr when it is a
    terminal and the work is long enough to watch; a no-op otherwise (pipes and logs stay clean)."""
    console = stderr()
    if not console.is_terminal or total < 1000:
        yield lambda: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        steps = [0]

        def advance() -> None:
            steps[0] += 1
            if steps[0] % 200 == 0 or steps[0] == total:  # a redraw per 200 steps: the bar costs nothing
                progress.update(task, completed=steps[0])

        yield advance
