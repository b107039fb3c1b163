"""`proverctl paths` and `proverctl config`: where things live and which settings are in force."""

from __future__ import annotations

import typer

from proverctl.cli._output import FormatOption, emit, resolve_format
from proverctl.paths import Paths
from proverctl.settings import Settings


def paths_command(format: FormatOption = None) -> None:
    """Print every location proverctl uses (PROVERCTL_HOME moves them all).

    Example: proverctl paths --format json
    """
    data = Paths.resolve().as_dict()

    def human(console):
        from rich.table import Table

        table = Table(show_header=False, box=None)
        for name, value in data.items():
            table.add_row(name, value)
        console.print(table)

    emit(data, resolve_format(format, allow_jsonl=False), human)


def config_command(format: FormatOption = None) -> None:
    """Print the effective settings and where each comes from (flag > env > config.toml > default).

    Example: PROVERCTL_WORKERS=4 proverctl config
    """
    settings = Settings.load()
    rows = settings.as_rows()

    def human(console):
        from rich.table import Table

        table = Table("setting", "value", "source", "variable", box=None)
        for row in rows:
            table.add_row(row["name"], str(row["value"]), row["source"], row["env"])
        console.print(table)

    emit(rows, resolve_format(format), human)


def register(app: typer.Typer) -> None:
    app.command("paths")(paths_command)
    app.command("config")(config_command)
