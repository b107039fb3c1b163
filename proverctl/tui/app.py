"""`proverctl tui`: browse runs, targets and attempts; re-verify, copy, export, edit.

The app gets its services (store, verifier, output dir) through its constructor; `make_app` is the
one factory the CLI and the tests use. The core never imports this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from proverctl.tui.screens import AttemptScreen, AttemptsScreen, RunScreen, RunsScreen
from proverctl.tui.services import TuiServices, make_services


class ProverApp(App):
    TITLE = "proverctl"
    CSS = """
    #message { padding: 0 1; color: $text-muted; }
    #search { margin: 0 1; }
    #summary { padding: 0 1 1 1; }
    #code { padding: 0 1; }
    #messages { padding: 1 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "toggle_help", "Keys", key_display="?"),
    ]

    def __init__(self, services: TuiServices, run_id: int | None = None) -> None:
        super().__init__()
        self.services = services
        self.start_run = run_id

    def on_mount(self) -> None:
        self.push_screen(RunsScreen())
        if self.start_run is not None:
            self.push_screen(RunScreen(self.start_run))

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Runs", "Go back to the list of runs", self._to_runs)
        if isinstance(screen, AttemptScreen):
            yield SystemCommand("Re-verify attempt", "Check this attempt with Lean again", screen.action_reverify)
            yield SystemCommand("Copy proof", "Copy the checked code (or save it to a file)", screen.action_copy)
            yield SystemCommand("Export run", "Write every attempt of this run as JSON lines", screen.action_export)
            yield SystemCommand("Open in $EDITOR", "Open the source file at the theorem", screen.action_edit)
            yield SystemCommand("Next failed attempt", "Jump to the next failed attempt", lambda: screen.action_step(1))
            yield SystemCommand("Previous failed attempt", "Jump to the previous failed attempt", lambda: screen.action_step(-1))
        if isinstance(screen, (RunScreen, AttemptsScreen)):
            for verdict in ("", "proved", "rejected", "timeout", "error"):
                if isinstance(screen, RunScreen) and verdict in ("rejected", "timeout", "error"):
                    continue
                label = verdict or "all"
                yield SystemCommand(f"Filter: {label}", f"Show {label} rows", lambda v=verdict: screen.action_filter(v))
        if isinstance(screen, AttemptsScreen):
            yield SystemCommand("Search attempts", "Search code and Lean messages", screen.action_search)

    def _to_runs(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()


def make_app(store_path: Path | None = None, run_id: int | None = None, services: TuiServices | None = None) -> ProverApp:
    return ProverApp(services or make_services(store_path), run_id)
