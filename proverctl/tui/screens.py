"""The screens: runs -> run (targets) -> attempts of a target -> one attempt, and from a run's target
its decomposition tree (sketches and holes; any node opens its attempts).

Database reads run in thread workers and post their rows back; handlers own the widgets. Screens of
a run that is still running poll the store every second (WAL lets them read while `prove` writes),
and a run's target list follows it incrementally: only the targets that got attempts since the last
look are read again, and only their changed cells are redrawn (a run of 10,000 targets stays light
while attempts land; bench/tui_live.py).
"""

from __future__ import annotations

import json

from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Collapsible, DataTable, Footer, Header, Input, Static, Tree

from proverctl.lean.verdict import checked_label
from proverctl.store.db import local_time

POLL_SECONDS = 1.0
PAGE = 500
VERDICT_STYLE = {"proved": "green", "rejected": "red", "timeout": "yellow", "error": "magenta",
                 "not-proved": "red", "pending": "yellow", "interrupted": "yellow", "running": "cyan", "finished": "white"}


def _styled(word: str | None) -> Text:
    return Text(word or "-", style=VERDICT_STYLE.get(word or "", ""))


class _Table(Screen):
    """A screen with a message line and a table, filled by a worker; shared by the list screens."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="message")
        yield DataTable(id="table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one("#table", DataTable)

    live = True  # whether this screen's data can still change (a finished run's cannot)
    _fingerprint: tuple | None = None
    _shown: tuple | None = None

    def poll(self) -> None:
        """Timer callback: only the screen on top polls, only while its data can change, and it reloads
        only when the store changed (a cheap fingerprint, read in a worker)."""
        if self.app.screen is self and self.live:
            self.check_for_changes()

    @work(thread=True, exclusive=True, group="poll")
    def check_for_changes(self) -> None:
        try:
            with self.app.services.open_store() as store:
                fingerprint = store.fingerprint()
        except Exception:
            return  # the next load says what is wrong
        if fingerprint != self._fingerprint:
            before, self._fingerprint = self._fingerprint, fingerprint
            self.app.call_from_thread(self.changed, before, fingerprint)

    def changed(self, before: tuple | None, now: tuple) -> None:
        """The store changed since the last look: read the screen again (screens that can do less override)."""
        self.load()

    def say(self, text: str) -> None:
        self.query_one("#message", Static).update(text)

    def fill(self, columns: tuple[str, ...], rows: list[tuple], keys: list[str]) -> None:
        self.__dict__.pop("_pending", None)  # the rows are read whole: nothing older waits
        table = self.table
        keep = table.cursor_row
        if not table.columns:
            self._column_keys = table.add_columns(*columns)
        table.clear()
        for key, row in zip(keys, rows):
            table.add_row(*row, key=key)
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))

    def selected_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _show(self, rows, keys, message) -> None:
        shown = (tuple(map(str, rows)), tuple(keys), message)
        if shown == self._shown:
            return  # nothing changed: the table keeps its rows and its cursor
        self._shown = shown
        self._cells = {key: tuple(map(str, row)) for key, row in zip(keys, rows)}
        self.say(message)
        self.fill(self.COLUMNS, rows, keys)

    def patch(self, rows: list[tuple], keys: list[str]) -> bool:
        """Redraw only the cells of these rows that changed, and only rows on screen: a row scrolled out of
        view waits until it scrolls in (any cell update makes the table redraw what it shows, which on a
        run of 10,000 targets costs more than the update). False when a row is not in the table (a new
        target: the caller reads the screen whole)."""
        cells = getattr(self, "_cells", {})
        if any(key not in cells for key in keys):
            return False
        pending = self.__dict__.setdefault("_pending", {})
        if not getattr(self, "_watching", False):
            self._watching = True
            self.watch(self.table, "scroll_y", lambda *_: self._flush(), init=False)
        pending.update(zip(keys, rows))
        self._flush()
        self._shown = None  # the full picture is no longer what was last drawn whole
        return True

    def on_resize(self) -> None:
        self._flush()

    def _flush(self) -> None:
        """Apply the waiting updates of the rows now on screen."""
        pending = self.__dict__.get("_pending")
        if not pending:
            return
        table, cells = self.table, self._cells
        first = int(table.scroll_y)
        last = first + max(1, table.size.height - (table.header_height if table.show_header else 0))
        for key in list(pending):
            try:
                index = table.get_row_index(key)
            except Exception:  # the row went away (a reload): its update is moot
                pending.pop(key)
                continue
            if not first <= index < last:
                continue
            row = pending.pop(key)
            text = tuple(map(str, row))
            for column, (old, new) in enumerate(zip(cells[key], text)):
                if old != new:
                    table.update_cell(key, self._column_keys[column], row[column])
            cells[key] = text

    def opens(self, key: int) -> Screen:
        """The screen the selected row opens."""
        raise NotImplementedError

    @on(DataTable.RowSelected)
    def action_open(self, event=None) -> None:
        key = self.selected_key()
        if key is not None:
            self.app.push_screen(self.opens(int(key)))


class RunsScreen(_Table):
    BINDINGS = [Binding("enter", "open", "Open run", show=True), Binding("d", "diff", "Diff two runs"), Binding("R", "refresh", "Refresh")]
    COLUMNS = ("run", "started", "kind", "model", "input", "proved", "status")

    def on_mount(self) -> None:
        self.title = "proverctl — runs"
        self.load()
        self.set_interval(POLL_SECONDS, self.poll)

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        services = self.app.services
        try:
            with services.open_store() as store:
                runs = store.runs(limit=PAGE)
        except Exception as exc:  # a missing, newer or broken store: say so, keep the UI alive
            self.app.call_from_thread(self.say, _store_problem(exc, services))
            return
        rows = [(str(r["id"]), local_time(r["started"]), r["kind"], str(r["model"] or "-"), r["input"],
                 f"{r['n_proved']}/{r['n_targets']}", _styled(r["status"])) for r in runs]
        message = "" if runs else "No runs yet: `proverctl prove FILE` records one."
        self.app.call_from_thread(self._show, rows, [str(r["id"]) for r in runs], message)

    def opens(self, key: int) -> Screen:
        return RunScreen(key)

    _diff_from: int | None = None

    def action_diff(self) -> None:
        """`d` on one run, then `d` on another: the two side by side (`runs diff A B`)."""
        key = self.selected_key()
        if key is None:
            return
        if self._diff_from is None or self._diff_from == int(key):
            self._diff_from = int(key)
            self.say(f"diff: A is run {key}; select run B and press d")
            return
        a, self._diff_from = self._diff_from, None
        self.say("")
        self.app.push_screen(DiffScreen(a, int(key)))


class DiffScreen(_Table):
    """Two runs per target (proverctl.proving.diff): status and label on each side, the constants one
    side's proof uses that the other run's proofs never use, flags. Enter opens the target's attempts in A
    (or B where A has none)."""

    BINDINGS = [Binding("enter", "open", "Attempts"), Binding("a", "toggle_all", "All targets"), Binding("escape", "app.pop_screen", "Back")]
    COLUMNS = ("target", "A", "B", "only A uses", "only B uses", "flags", "change")

    def __init__(self, a: int, b: int) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.all_targets = False
        self.live = False
        self._ids: dict[str, int] = {}

    def on_mount(self) -> None:
        self.title = f"run {self.a} vs run {self.b}"
        self.load()

    def action_toggle_all(self) -> None:
        self.all_targets = not self.all_targets
        self.load()

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        from proverctl.proving.diff import diff_runs, differs

        with self.app.services.open_store() as store:
            data = diff_runs(store, self.a, self.b)
            ids = {}
            for run in (self.b, self.a):  # A's target wins where both have it
                ids.update({t["name"] or f"example@{t['line']}": t["id"] for t in store.targets(run) if t.get("parent_id") is None})
        self._ids = ids
        shown = [t for t in data["targets"] if self.all_targets or differs(t)]

        def side(s):
            return "-" if s is None else s["status"] + (f" ({s['checked']})" if s.get("checked") else "")

        rows = [(t["target"], side(t["a"]), side(t["b"]), ", ".join(t["only_a"][:4]), ", ".join(t["only_b"][:4]),
                 "; ".join(((t["a"] or {}).get("flags") or []) + ((t["b"] or {}).get("flags") or []))[:60], t["change"]) for t in shown]
        a, b = data["a"], data["b"]
        message = (f"A: run {a['run']} {a['proved']}/{a['targets']} proved ({a['kernel_checked']} kernel-checked) · "
                   f"B: run {b['run']} {b['proved']}/{b['targets']} ({b['kernel_checked']}) · proved only in A {data['proved_only_a']}, "
                   f"only in B {data['proved_only_b']}" + ("" if self.all_targets else " · a: all targets"))
        self._keys = [t["target"] for t in shown]
        self.app.call_from_thread(self._show, rows, [str(i) for i, _ in enumerate(shown)], message)

    def opens(self, key: int) -> Screen:
        return AttemptsScreen(self._ids[self._keys[key]])


def _store_problem(exc: Exception, services) -> str:
    from proverctl.errors import ProverctlError

    if isinstance(exc, ProverctlError):
        hint = f"\n{exc.hint}" if exc.hint else ""
        return f"[red]{exc.message}[/]{hint}"
    return f"[red]cannot read the attempt store {services.store_path}: {exc}[/]"


class RunScreen(_Table):
    BINDINGS = [
        Binding("enter", "open", "Attempts"),
        Binding("1", "filter('')", "All"),
        Binding("2", "filter('proved')", "Proved"),
        Binding("3", "filter('not-proved')", "Not proved"),
        Binding("4", "filter('pending')", "Pending"),
        Binding("t", "tree", "Decomposition"),
        Binding("escape", "app.pop_screen", "Back"),
    ]
    COLUMNS = ("target", "status", "checked", "attempts", "best", "seconds", "line")

    def action_tree(self) -> None:
        key = self.selected_key()
        if key is not None:
            self.app.push_screen(TreeScreen(int(key)))

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.status_filter = ""

    def on_mount(self) -> None:
        self.title = f"run {self.run_id}"
        self.load()
        self.set_interval(POLL_SECONDS, self.poll)

    def action_filter(self, status: str) -> None:
        self.status_filter = status
        self.load()

    _mark = 0  # the newest attempt the table has seen

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with self.app.services.open_store() as store:
            mark = store.newest_attempt()  # read before the targets: what lands meanwhile is followed next time
            self._fingerprint = store.fingerprint()  # the state this load shows: the next poll follows from it
            run = store.run(self.run_id)
            run = dict(run) if run is not None else None
            targets = store.targets(self.run_id, self.status_filter or None)
        if run is None:
            self.app.call_from_thread(self.say, f"[red]no run {self.run_id}[/]")
            return
        self.live = run["status"] == "running"
        self._mark = mark
        rows = [self.row(t) for t in targets]
        shown = f" (filter: {self.status_filter})" if self.status_filter else ""
        if run["kind"] == "check":
            what = "check"
        else:
            what = f"model {run['model']}" + (f"@{run['revision'][:12]}" if run.get("revision") else "")
        head = (f"{run['input']} · {what} · {run['status']} · {len(targets)} target(s){shown}"
                if targets or self.status_filter else f"{run['input']}: this run has no targets")
        self.app.call_from_thread(self._show, rows, [str(t["id"]) for t in targets], head)

    @staticmethod
    def row(t: dict) -> tuple:
        checked = checked_label(t["status"], t.get("proved_judge"), t.get("proved_sandbox")) if t["status"] == "proved" else ""
        return (("  ↳ " if t.get("parent_id") else "") + str(t["name"] or f"example@{t['line']}"), _styled(t["status"]),
                checked or "-", str(t["n_attempts"]), _styled(t["best"]), f"{t['seconds']:.1f}", str(t["line"]))

    def changed(self, before: tuple | None, now: tuple) -> None:
        """Only attempts landed (no run started, finished or changed status) and no filter hides rows: read
        and redraw just the targets they touched."""
        if before is not None and before[:4] == now[:4] and not self.status_filter:
            self.follow()
        else:
            self.load()

    @work(thread=True, exclusive=True, group="load")
    def follow(self) -> None:
        with self.app.services.open_store() as store:
            touched, newest = store.targets_touched(self.run_id, self._mark)
        if touched is None:
            self.app.call_from_thread(self.load)
            return
        self._mark = newest
        if touched:
            self.app.call_from_thread(self._follow, [self.row(t) for t in touched], [str(t["id"]) for t in touched])

    def _follow(self, rows: list[tuple], keys: list[str]) -> None:
        if not self.patch(rows, keys):
            self.load()

    def opens(self, key: int) -> Screen:
        return AttemptsScreen(key)


class AttemptsScreen(_Table):
    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("1", "filter('')", "All"),
        Binding("2", "filter('proved')", "Proved"),
        Binding("3", "filter('rejected')", "Rejected"),
        Binding("4", "filter('timeout')", "Timeout"),
        Binding("5", "filter('error')", "Error"),
        Binding("slash", "search", "Search"),
        Binding("escape", "back", "Back"),
    ]
    COLUMNS = ("attempt", "sample", "round", "verdict", "checked", "first error", "tokens", "seconds")

    def __init__(self, target_id: int) -> None:
        super().__init__()
        self.target_id = target_id
        self.verdict_filter = ""
        self.search = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="message")
        yield Input(placeholder="search code and Lean messages (enter)", id="search")
        yield DataTable(id="table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "attempts"
        self.query_one("#search", Input).display = False
        self.table.focus()
        self.load()
        self.set_interval(POLL_SECONDS, self.poll)

    def action_filter(self, verdict: str) -> None:
        self.verdict_filter = verdict
        self.load()

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    def action_back(self) -> None:
        box = self.query_one("#search", Input)
        if box.display:  # first escape closes the search and clears it
            box.display = False
            box.value = ""
            self.search = ""
            self.table.focus()
            self.load()
        else:
            self.app.pop_screen()

    @on(Input.Submitted, "#search")
    def _searched(self, event: Input.Submitted) -> None:
        self.search = event.value.strip()
        self.table.focus()
        self.load()

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with self.app.services.open_store() as store:
            target = store.target(self.target_id)
            attempts = store.attempts(self.target_id, self.verdict_filter or None, limit=PAGE, search=self.search or None)
            run = store.run(target["run_id"]) if target else None
        self.live = run is not None and run["status"] == "running"
        rows = []
        for a in attempts:
            first = next((m["data"].splitlines()[0] for m in a["messages"] if m["severity"] == "error" and m["data"]), None)
            first = first or (a["reasons"][0] if a["reasons"] else "")
            seconds = (a["gen_seconds"] or 0) + (a["verify_seconds"] or 0)
            checked = checked_label(a["verdict"], a.get("judge"), a.get("sandbox")) or (a.get("judge") or "-")
            rows.append((f"a{a['id']}", str(a["sample"]), str(a["round"]), _styled(a["verdict"]), checked, first[:70],
                         str(a["completion_tokens"] or "-"), f"{seconds:.1f}"))
        filters = ", ".join(x for x in (self.verdict_filter, f"'{self.search}'" if self.search else "") if x)
        head = f"{target['name'] or 'example'} · {target['status']} · {len(attempts)} attempt(s)" + (f" (filter: {filters})" if filters else "")
        self.app.call_from_thread(self._show, rows, [str(a["id"]) for a in attempts], head)


    def opens(self, key: int) -> Screen:
        return AttemptScreen(key)


def code_view(code: str | None, messages: list[dict], first_line: int = 1) -> Syntax | Text:
    """The checked code with line numbers, numbered from `first_line` (the line Lean's messages count it
    from: 1 for a candidate, its line in the file for a declaration of a checked file); lines with an
    error are marked (❱) and their spans underlined."""
    if not code:
        return Text("(no code was extracted from the output)", style="dim")
    last = first_line + code.count("\n")
    errors = [m for m in messages if m["severity"] == "error" and m["line"] and first_line <= m["line"] <= last]
    syntax = Syntax(code, "lean4", line_numbers=True, word_wrap=True, start_line=first_line,
                    theme="ansi_dark", highlight_lines={m["line"] for m in errors})
    for m in errors:
        end_line = min(m["end_line"] or m["line"], last)
        end_col = m["end_column"] if m["end_column"] is not None else (m["column"] or 0) + 1
        syntax.stylize_range("bold underline red", (m["line"] - first_line + 1, m["column"] or 0),
                             (end_line - first_line + 1, end_col))
    return syntax


def first_line(run: dict | None, target: dict, code: str | None) -> int:
    """The line Lean's messages number the attempt's first code line as: a declaration of a checked .lean
    file was reported in the file's lines (its code starts at its doc comment, `line` is its keyword's);
    a model's candidate (prove, an OUTPUTS.jsonl row, a re-verify) from 1."""
    if not code or run is None or run.get("kind") != "check" or not run.get("request"):
        return 1
    from proverctl.proving.check import CheckRequest

    request = CheckRequest.from_json(run["request"])
    if request.candidates or (request.input or "").endswith(".jsonl"):
        return 1
    keyword = (target.get("statement") or "").split("\n", 1)[0]
    before = code[:code.find(keyword)].count("\n") if keyword and keyword in code else 0
    return max(1, (target.get("line") or 1) - before)


class TreeScreen(Screen):
    """A target's decomposition (`prove --decompose`): its sketches, each with its holes, a hole that
    resisted with its own sketches under it. Enter on a sketch opens the planner's answer (or the
    composed check), on a hole the attempts of the hole's target."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("R", "refresh", "Refresh")]

    def __init__(self, target_id: int) -> None:
        super().__init__()
        self.target_id = target_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="message")
        yield Tree("decomposition", id="tree")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "decomposition"
        self.query_one("#tree", Tree).focus()
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        from proverctl.proving.records import decomposition_tree

        with self.app.services.open_store() as store:
            target = store.target(self.target_id)
            tree = decomposition_tree(store, self.target_id) if target else []
        self.app.call_from_thread(self._show, target, tree)

    def _show(self, target: dict | None, tree: list[dict]) -> None:
        message = self.query_one("#message", Static)
        widget = self.query_one("#tree", Tree)
        widget.clear()
        if target is None:
            message.update(f"[red]no target {self.target_id}[/]")
            return
        name = target["name"] or f"example@{target['line']}"
        message.update(Text(f"{name}: {target['status']}" + ("" if tree else " · not decomposed (prove --decompose does)")))
        widget.root.set_label(Text(name, style=VERDICT_STYLE.get(target["status"], "")))
        self._add(widget.root, tree)
        widget.root.expand_all()

    def _add(self, node, tree: list[dict]) -> None:
        for s in tree:
            why = f" · {s['reasons'][0]}" if s["reasons"] and s["status"] != "proved" else ""
            label = Text(f"sketch {s['sketch']}" + (f" round {s['round']}" if s["round"] else "") + ": ")
            label.append(s["status"], style=SKETCH_STYLE.get(s["status"], ""))
            label.append(("  masked" if s["masked"] else "") + why)
            branch = node.add(label, data=("attempt", s["attempt"]))
            if s.get("composed_attempt"):
                branch.add_leaf(Text(f"composed proof (a{s['composed_attempt']})"), data=("attempt", s["composed_attempt"]))
            for h in s["holes"]:
                label = Text(f"{h['name']}: ")
                label.append(h["status"], style=HOLE_STYLE.get(h["status"], ""))
                label.append(f"  {h['attempts']} attempt(s) · {h['method']} · {' '.join(h['statement'].split())}")
                leaf = branch.add(label, data=("target", h["target_id"]))
                self._add(leaf, h["tree"])

    @on(Tree.NodeSelected)
    def open_node(self, event: Tree.NodeSelected) -> None:
        data = event.node.data
        if not data or data[1] is None:
            return
        kind, key = data
        self.app.push_screen(AttemptScreen(key) if kind == "attempt" else AttemptsScreen(key))


SKETCH_STYLE = {"proved": "green", "failed": "red", "abandoned": "yellow", "composed-refused": "red", "elaborated": "cyan"}
HOLE_STYLE = {"proved": "green", "reused": "green", "false": "red", "exhausted": "red", "statement-refused": "red",
              "cancelled": "yellow", "pending": "cyan"}


class AttemptScreen(Screen):
    BINDINGS = [
        Binding("r", "reverify", "Re-verify"),
        Binding("c", "copy", "Copy proof"),
        Binding("e", "edit", "Open in $EDITOR"),
        Binding("x", "export", "Export run"),
        Binding("n", "step(1)", "Next failed"),
        Binding("p", "step(-1)", "Prev failed"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, attempt_id: int) -> None:
        super().__init__()
        self.attempt_id = attempt_id
        self.attempt: dict | None = None
        self.target: dict | None = None
        self.run: dict | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="attempt"):
            yield Static(id="summary")
            yield Static(id="code")
            yield Static(id="messages")
            with Collapsible(title="conversation with Lean", collapsed=False, id="turns-box"):
                yield Static(id="turns")
            with Collapsible(title="raw model output", collapsed=True, id="raw-box"):
                yield Static(id="raw")
            with Collapsible(title="prompt and sampling", collapsed=True, id="prompt-box"):
                yield Static(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with self.app.services.open_store() as store:
            attempt = store.attempt(self.attempt_id)
            target = store.target(attempt["target_id"]) if attempt else None
            run = dict(store.run(target["run_id"])) if target else None
        self.app.call_from_thread(self._show, attempt, target, run)

    def _show(self, attempt, target, run) -> None:
        if attempt is None:
            self.query_one("#summary", Static).update(f"[red]no attempt {self.attempt_id}[/]")
            return
        self.attempt, self.target, self.run = attempt, target, run
        self.title = f"{target['name'] or 'example'} · attempt a{attempt['id']}"
        reasons = "\n".join(f"  • {r}" for r in attempt["reasons"])
        checked = checked_label(attempt["verdict"], attempt.get("judge"), attempt.get("sandbox"))
        judged = f"({checked}{', ' + attempt['judge'] if checked == 'kernel-checked' else ''}) " if checked else ""
        if run["kind"] == "check":  # no model, no sampling: what was checked, and how long Lean took
            facts = f"· {run['kind']} of {run['input']} · check {attempt['verify_seconds']} s\n"
        else:
            model = run["model"] + (f"@{run['revision'][:12]}" if run.get("revision") else "")  # no made-up revision
            tokens = (f" · tokens {attempt['prompt_tokens']}+{attempt['completion_tokens']}"
                      if attempt["prompt_tokens"] is not None or attempt["completion_tokens"] is not None else "")
            gen = f" · gen {attempt['gen_seconds']} s" if attempt["gen_seconds"] is not None else ""
            facts = (f"· sample {attempt['sample']} round {attempt['round']} · model {model}{tokens}{gen} · "
                     f"check {attempt['verify_seconds']} s\n")
        summary = Text.assemble(
            ("verdict ", "bold"), (attempt["verdict"] + " ", VERDICT_STYLE.get(attempt["verdict"], "")), judged, facts, reasons)
        self.query_one("#summary", Static).update(summary)
        start = first_line(run, target, attempt["code"])
        self.query_one("#code", Static).update(code_view(attempt["code"], attempt["messages"], start))
        where = f"{target['file']}:" if start > 1 else ""
        lines = [f"{where}{m['line']}:{m['column']}: {m['severity']}: {m['data']}" for m in attempt["messages"]]
        self.query_one("#messages", Static).update(Text("\n".join(lines) or "no Lean messages", style="dim" if not lines else ""))
        turns = attempt.get("turns")
        box = self.query_one("#turns-box", Collapsible)
        box.display = bool(turns)  # only multi-turn samples (sketches, tool calls) have a conversation
        if turns:
            from proverctl.inference.interactive import render_turns

            calls = sum(1 for t in turns if t.get("kind") in ("sketch", "tool_call", "error"))
            box.title = f"conversation with Lean ({calls} call{'s' if calls != 1 else ''})"
            self.query_one("#turns", Static).update(Text(render_turns(turns)))
        self.query_one("#raw", Static).update(Text(attempt["raw_output"] or ""))
        prompt = attempt["prompt"] or {}
        self.query_one("#prompt", Static).update(Text(json.dumps(prompt, indent=1, ensure_ascii=False)))

    async def action_reverify(self) -> None:
        services = self.app.services
        if self.attempt is None or not self.attempt["code"]:
            self.notify("nothing to re-verify: no code was extracted", severity="warning")
            return
        if services.reverify is None:
            self.notify("re-verification is not available", severity="warning")
            return
        self.notify("re-verifying with Lean ...")
        self.reverify()

    @work(exclusive=True, group="reverify")
    async def reverify(self) -> None:
        from proverctl.errors import ProverctlError

        try:
            verdict = await self.app.services.reverify(self.target, self.attempt)
        except ProverctlError as exc:
            self.notify(f"{exc.message}\n{exc.hint or ''}", severity="error", timeout=10)
            return
        self.reverified = verdict
        style = "information" if verdict.proved else "warning"
        checked = checked_label(verdict.kind.value, verdict.judge, verdict.sandbox)
        self.notify(f"re-verified: {verdict.kind.value}" + (f" ({checked})" if checked else "")
                    + (f" — {verdict.reasons[0]}" if verdict.reasons else ""), severity=style)
        self.query_one("#messages", Static).update(
            Text(f"re-verified: {verdict.kind.value}{' ' + checked if checked else ''} ({verdict.seconds:.1f} s)\n"
                 + "\n".join(verdict.reasons)))

    def action_copy(self) -> None:
        if not self.attempt or not self.attempt["code"]:
            self.notify("no proof to copy", severity="warning")
            return
        code = self.target["header"] + self.attempt["code"]
        self.app.copy_to_clipboard(code)
        path = self.app.services.save_proof(self.target["name"] or "example", code)
        self.notify(f"copied to the clipboard (if the terminal allows) and saved to {path}")

    def action_export(self) -> None:
        if self.run:
            path = self.app.services.export_run(self.run["id"])
            self.notify(f"exported run {self.run['id']} to {path}")

    def action_edit(self) -> None:
        import shlex
        import subprocess
        from pathlib import Path

        editor = self.app.services.editor
        if not editor:
            self.notify("set $EDITOR to open files", severity="warning")
            return
        path = Path(self.target["file"]) if self.target else None
        if path is None or not path.is_file():
            self.notify(f"{self.target['file'] if self.target else '?'} is not a file on disk", severity="warning")
            return
        with self.app.suspend():
            subprocess.run([*shlex.split(editor), f"+{self.target['line']}", str(path)])

    @work(thread=True, exclusive=True, group="step")
    def action_step(self, direction: int) -> None:
        with self.app.services.open_store() as store:
            index = store.attempt_index(self.attempt["target_id"]) if self.attempt else []
        ids = [i for i, verdict in index if verdict != "proved" or i == self.attempt_id]
        if self.attempt_id not in ids or len(ids) < 2:
            self.app.call_from_thread(self.notify, "no other failed attempt")
            return
        position = (ids.index(self.attempt_id) + direction) % len(ids)
        self.attempt_id = ids[position]
        self.load()
