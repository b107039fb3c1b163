"""What a person sees on stderr while a prove or bench job runs: notices as lines; on a terminal a live
display (a summary line always visible, the busiest targets below it); elsewhere (CI, nohup) the summary
as a plain line every `progress_interval` seconds, and one last `finished:` line when the job ends, so a
log always ends with the tally."""

from __future__ import annotations

from proverctl.cli._output import info, stderr_is_tty, warn


class ProgressView:
    """What the user sees on stderr while a job runs: notices as lines; on a terminal a live display
    (a summary line always visible, the busiest targets below it); elsewhere (CI, nohup) the summary as
    a plain line every `progress_interval` seconds."""

    def __init__(self, fmt: str, job=None, *, subset: str | None = None) -> None:
        self.fmt = fmt
        self.job = job
        self.subset = subset
        self.live = None
        self._ticker = None

    def event(self, event) -> None:
        from proverctl.proving import Notice, RunStarted

        if isinstance(event, Notice):
            (warn if event.level == "warning" else info)(event.text)
        elif isinstance(event, RunStarted) and self.job is not None and self.fmt != "quiet":
            if stderr_is_tty():
                self._start_live()
            else:
                self._start_ticker()

    def _start_live(self) -> None:
        from rich.live import Live

        from proverctl.cli._output import stderr

        view = self

        class Renderable:
            def __rich__(self):
                return view.render()

        self.live = Live(Renderable(), console=stderr(), refresh_per_second=4, transient=False)
        self.live.start()

    def _start_ticker(self) -> None:
        import threading

        from proverctl.settings import Settings

        interval = Settings.load().progress_interval
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(interval):
                snapshot = self.job.snapshot()
                if snapshot is not None:
                    info("progress: " + summary_line(snapshot))
                    for line in endpoint_lines(snapshot):
                        info("progress:   " + line)

        thread = threading.Thread(target=tick, name="progress", daemon=True)
        thread.start()
        self._ticker = stop

    def render(self):
        from rich.console import Group
        from rich.text import Text

        snapshot = self.job.snapshot() if self.job is not None else None
        if snapshot is None:
            return Text("starting ...")
        width = self.live.console.width if self.live is not None else 100
        parts = summary_parts(snapshot) + ([f"[{self.subset}]"] if self.subset else [])
        lines = [Text(line, style="bold") for line in pack(parts, width)]
        for stats, line in zip(snapshot.get("endpoints", []), endpoint_lines(snapshot)):
            lines.append(Text(f"  {line}", style=None if stats["up"] else "red"))
        for name, in_flight, attempts, proved in snapshot["targets_shown"]:
            mark = Text("  ✓ proved", style="green") if proved else Text(f"  {in_flight} generating")
            lines.append(Text(f"  {name[:48]:48} {attempts:4} attempts") + mark)
        if snapshot["targets_more"]:
            lines.append(Text(f"  +{snapshot['targets_more']} more", style="dim"))
        return Group(*lines)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self._ticker is not None:
            self._ticker.set()
            self._ticker = None
            snapshot = self.job.snapshot()
            if snapshot is not None:
                info("finished: " + summary_line(snapshot, final=True))


def endpoint_lines(s: dict) -> list[str]:
    """One line per endpoint of a run over several: in flight, requests, failures, tokens/s, up or down."""
    if len(s.get("endpoints", [])) < 2:
        return []
    return [f"{e['endpoint']}: {e['in_flight']} in flight, {e['requests']} requests, {e['failed']} failed, "
            f"{e['tokens_per_s']:,.0f} tok/s" + ("" if e["up"] else f", down ({e['last_error']})") for e in s["endpoints"]]


def summary_line(s: dict, final: bool = False) -> str:
    """targets proved/total, samples done / in flight / cancelled, rounds, tokens/s, elapsed, and an ETA
    once the rate is known (an estimate at the current rate, never promised as a bound); `final`: the
    tally at the end (no in-flight counts, no ETA)."""
    return " · ".join(summary_parts(s, final))


def pack(parts: list[str], width: int) -> list[str]:
    """The summary's parts on as few lines of `width` as they fit (a live display crops long lines)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return lines


def summary_parts(s: dict, final: bool = False) -> list[str]:
    elapsed = s["elapsed"]
    rate = s["samples_done"] / elapsed if elapsed > 0 else 0.0
    tokens = s["tokens"] / elapsed if elapsed > 0 else 0.0
    if final:
        return [f"{s['proved']}/{s['targets']} targets proved", f"{s['samples_done']} samples, {s['cancelled']} cancelled",
                *([f"{s['rounds_done']} feedback rounds"] if s["rounds_done"] else []),
                f"{s['tokens']:,} tokens ({tokens:,.0f} tok/s)" if s["tokens"] else "tokens -", f"elapsed {_duration(elapsed)}"]
    parts = [f"{s['proved']}/{s['targets']} targets proved",
             f"samples {s['samples_done']} done, {s['in_flight']} in flight, {s['cancelled']} cancelled",
             f"checks {s['checking']} running, {s['waiting_checks']} waiting"]
    if s["rounds_done"]:
        parts.append(f"{s['rounds_done']} feedback rounds")
    parts.append(f"{tokens:,.0f} tok/s" if s["tokens"] else "tok/s -")
    parts.append(f"elapsed {_duration(elapsed)}")
    if s["samples_done"] >= 8 and rate > 0 and s["budget_left"]:
        # At the current rate, were every target to spend its whole budget: slower checks can make it
        # longer and early proofs shorter, so it is "about", not a bound.
        parts.append(f"ETA about {_duration((s['budget_left'] + s['in_flight']) / rate)}")
    return parts


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
