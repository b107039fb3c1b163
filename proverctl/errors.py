"""The exception family and the exit-code contract.

Core code raises `ProverctlError` subclasses; the CLI turns them into one line on stderr (plus the
hint) and the subclass's exit code. This module imports neither rich nor typer, so every layer can use it.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of every proverctl command (documented in README.md)."""

    OK = 0  # every target proved, or nothing to do
    NOT_PROVED = 1  # some target not proved / some check failed
    USAGE = 2  # bad flag, bad input, unknown name
    ENVIRONMENT = 3  # something to install, pull, start or free is missing (model, Lean, GPU, session, disk, network)
    VERIFIER = 4  # the verifier's own infrastructure failed (REPL crash loop, ...)
    INTERRUPTED = 130  # Ctrl-C


class ProverctlError(Exception):
    """Base of every error proverctl reports to the user.

    `message` names the problem in one line; `hint` says how to fix it.
    """

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(ProverctlError):
    """The user asked for something malformed or unknown (exit 2)."""

    exit_code = ExitCode.USAGE


class EnvironmentMissing(ProverctlError):
    """Something the command needs is not there: a model, Lean, a GPU, a session, disk, network (exit 3)."""

    exit_code = ExitCode.ENVIRONMENT


class ModelNotFound(UsageError):
    """A model name that is neither a catalog alias, a hub repo, nor a local directory."""


class ModelNotPulled(EnvironmentMissing):
    """A known model whose weights are not in the local cache."""


class HubError(EnvironmentMissing):
    """The Hugging Face hub could not be reached or refused access."""


class NotEnoughDisk(EnvironmentMissing):
    """Free disk is below what a download needs."""


class ConfigError(UsageError):
    """The config file or a PROVERCTL_* variable holds a bad value."""


class VerifierError(ProverctlError):
    """The verifier infrastructure (REPL processes) failed; never a verdict about a proof (exit 4)."""

    exit_code = ExitCode.VERIFIER
