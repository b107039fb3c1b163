"""Every location proverctl reads or writes.

Defaults come from platformdirs; `PROVERCTL_HOME` moves all of proverctl's own directories under one
folder (tests and portable installs use it). Model weights are not ours: they live in the Hugging Face
cache, located the way huggingface_hub locates it (`HF_HUB_CACHE`, else `HF_HOME/hub`).
Nothing is ever written inside the installed package.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "proverctl"


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def existing_ancestor(path: Path) -> Path:
    """The path itself or its nearest existing parent (where free disk is measured before a dir exists)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, resolved from the environment at call time."""
    explicit = _env_path("HF_HUB_CACHE") or _env_path("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return explicit
    hf_home = _env_path("HF_HOME")
    if hf_home is None:
        xdg = _env_path("XDG_CACHE_HOME") or Path.home() / ".cache"
        hf_home = xdg / "huggingface"
    return hf_home / "hub"


@dataclass(frozen=True)
class Paths:
    """The resolved directories and files. Build one with `Paths.resolve()`."""

    home: Path | None
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    state_dir: Path
    runtime_dir: Path
    log_dir: Path
    config_file: Path
    hf_cache: Path

    @classmethod
    def resolve(cls) -> "Paths":
        home = _env_path("PROVERCTL_HOME")
        if home is not None:
            config_dir = home / "config"
            data_dir = home / "data"
            cache_dir = home / "cache"
            state_dir = home / "state"
            runtime_dir = home / "run"
            log_dir = home / "logs"
        else:
            import platformdirs

            dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
            config_dir = Path(dirs.user_config_dir)
            data_dir = Path(dirs.user_data_dir)
            cache_dir = Path(dirs.user_cache_dir)
            state_dir = Path(dirs.user_state_dir)
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp; that is fine.
                warnings.simplefilter("ignore")
                runtime_dir = Path(dirs.user_runtime_dir)
            log_dir = Path(dirs.user_log_dir)
        config_file = _env_path("PROVERCTL_CONFIG") or config_dir / "config.toml"
        return cls(
            home=home,
            config_dir=config_dir,
            data_dir=data_dir,
            cache_dir=cache_dir,
            state_dir=state_dir,
            runtime_dir=runtime_dir,
            log_dir=log_dir,
            config_file=config_file,
            hf_cache=hf_hub_cache(),
        )

    # Files and folders below the base directories.
    @property
    def store_db(self) -> Path:
        """The SQLite attempt store."""
        return self.data_dir / "attempts.sqlite3"

    @property
    def workspaces_dir(self) -> Path:
        """Lean workspaces made by `proverctl lean setup`, one folder per profile."""
        return self.data_dir / "lean"

    @property
    def sessions_dir(self) -> Path:
        """Records of running inference sessions."""
        return self.runtime_dir / "sessions"

    def as_dict(self) -> dict[str, str]:
        """Every location by name, for `proverctl paths`."""
        return {
            "config_file": str(self.config_file),
            "config_dir": str(self.config_dir),
            "data_dir": str(self.data_dir),
            "store_db": str(self.store_db),
            "lean_workspaces": str(self.workspaces_dir),
            "cache_dir": str(self.cache_dir),
            "state_dir": str(self.state_dir),
            "log_dir": str(self.log_dir),
            "runtime_dir": str(self.runtime_dir),
            "sessions_dir": str(self.sessions_dir),
            "hf_cache": str(self.hf_cache),
        }
