"""The attempt store: one SQLite file, all SQL in this class.

WAL journal (readers never block the writer, so the TUI can read while `prove` writes), foreign
keys on, a busy timeout so two `prove` runs can write at once, and ordered append-only migrations
recorded in `schema_migrations` and run on every open. Every attempt is committed the moment its
verdict is known, so a killed run loses nothing it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from proverctl.errors import ExitCode, ProverctlError, UsageError
from proverctl.lean.targets import statement_key

def _busy_timeout_ms() -> int:
    """The `store_busy_timeout` setting (flag > PROVERCTL_STORE_BUSY_TIMEOUT > config.toml > 30 s) in ms;
    a bad value is a one-line configuration error, not a traceback."""
    from proverctl.settings import Settings

    return int(Settings.load().store_busy_timeout * 1000)


BUSY_TIMEOUT_MS = 30_000  # the default; each Store reads the setting when it opens
OPEN_RETRIES = 40


class StoreError(ProverctlError):
    """The store cannot be used (newer schema, corrupted file, locked beyond the busy timeout)."""

    exit_code = ExitCode.ENVIRONMENT


class _NeedsMigration(StoreError):
    """A read-only open found an older schema."""


@dataclass(frozen=True)
class Migration:
    """One schema step: its number (what the store records in schema_migrations, never renumbered), its
    name, what it adds (tables and `table.column`s, which its test checks), and the function."""

    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]
    adds: tuple[str, ...] = ()


_REGISTERED: list[Migration] = []


def migration(version: int, name: str, *, adds: tuple[str, ...] = ()):
    """Register a migration (append-only: a new one takes the next number)."""
    def register(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
        _REGISTERED.append(Migration(version, name, fn, adds))
        return fn

    return register


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: executescript() would COMMIT the migration's transaction half-way."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@migration(1, 'initial_schema', adds=('runs', 'targets', 'attempts'))
def _m1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'prove',
            started REAL NOT NULL,
            finished REAL,
            command TEXT NOT NULL,
            input TEXT NOT NULL,
            model TEXT,
            revision TEXT,
            engine TEXT,
            endpoint TEXT,
            lean_profile TEXT,
            settings TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'running'
        );
        CREATE TABLE targets (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            file TEXT NOT NULL,
            name TEXT,
            kind TEXT NOT NULL DEFAULT 'theorem',
            line INTEGER,
            statement TEXT NOT NULL,
            doc TEXT,
            header TEXT NOT NULL,
            header_hash TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            proved_attempt INTEGER,
            seconds REAL NOT NULL DEFAULT 0,
            UNIQUE (run_id, ordinal)
        );
        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
            sample INTEGER NOT NULL,
            round INTEGER NOT NULL DEFAULT 0,
            prompt TEXT,
            raw_output TEXT,
            code TEXT,
            verdict TEXT NOT NULL,
            reasons TEXT NOT NULL DEFAULT '[]',
            messages TEXT NOT NULL DEFAULT '[]',
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            gen_seconds REAL,
            verify_seconds REAL,
            created REAL NOT NULL,
            UNIQUE (target_id, sample, round)
        );
        CREATE INDEX attempts_target ON attempts(target_id, verdict);
        CREATE INDEX targets_run ON targets(run_id, status);
        CREATE INDEX runs_started ON runs(started);
        """
    )


@migration(2, 'subgoal_targets', adds=('targets.parent_id', 'attempts.kind'))
def _m2(db: sqlite3.Connection) -> None:
    """Subgoal decomposition: subgoal lemmas are targets under their parent; attempts say what they were."""
    _run_script(
        db,
        """
        ALTER TABLE targets ADD COLUMN parent_id INTEGER REFERENCES targets(id) ON DELETE CASCADE;
        ALTER TABLE attempts ADD COLUMN kind TEXT NOT NULL DEFAULT 'proof';
        CREATE INDEX targets_parent ON targets(parent_id)
        """,
    )


@migration(3, 'recorded_requests', adds=('runs.request', 'runs.served_model', 'runs.engine_version', 'attempts.finish_reason', 'attempts.seed'))
def _m3(db: sqlite3.Connection) -> None:
    """A run is a recorded request (versioned JSON), with what the endpoint really served; each sample
    keeps why generation ended and its seed."""
    _run_script(
        db,
        """
        ALTER TABLE runs ADD COLUMN request TEXT;
        ALTER TABLE runs ADD COLUMN served_model TEXT;
        ALTER TABLE runs ADD COLUMN engine_version TEXT;
        ALTER TABLE attempts ADD COLUMN finish_reason TEXT;
        ALTER TABLE attempts ADD COLUMN seed INTEGER
        """,
    )


@migration(4, 'verdict_judge', adds=('attempts.judge',))
def _m4(db: sqlite3.Connection) -> None:
    """Who gave each verdict: "repl" (the pre-filter alone) or the kernel judge and its version."""
    _run_script(db, "ALTER TABLE attempts ADD COLUMN judge TEXT")


@migration(5, 'prompts_once_per_target', adds=('prompts', 'attempts.prompt_id'))
def _m5(db: sqlite3.Connection) -> None:
    """Prompts stored once per target (every sample of a round-0 prompt is the same text); attempts point
    at them. Existing attempts are moved over: one prompt row per distinct (target, text)."""
    _run_script(
        db,
        """
        CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,
            target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
            digest TEXT NOT NULL,
            text TEXT NOT NULL,
            UNIQUE (target_id, digest)
        );
        ALTER TABLE attempts ADD COLUMN prompt_id INTEGER REFERENCES prompts(id);
        INSERT INTO prompts (target_id, digest, text)
            SELECT DISTINCT target_id, prompt, prompt FROM attempts WHERE prompt IS NOT NULL;
        UPDATE attempts SET prompt_id = (SELECT p.id FROM prompts p WHERE p.target_id = attempts.target_id AND p.digest = attempts.prompt),
            prompt = NULL WHERE prompt IS NOT NULL;
        UPDATE prompts SET digest = 'migrated:' || id
        """,
    )


@migration(6, 'hints_and_turns', adds=('targets.hint', 'attempts.turns'))
def _m6(db: sqlite3.Connection) -> None:
    """The informal proof a target was prompted with (`prove --hint`, a dataset row's hint), so a resumed
    run prompts it the same way; and each multi-turn sample's turns (sketches or tool calls, Lean's answers)."""
    _run_script(db, "ALTER TABLE targets ADD COLUMN hint TEXT;\nALTER TABLE attempts ADD COLUMN turns TEXT")


@migration(7, 'verdict_sandbox', adds=('attempts.sandbox',))
def _m7(db: sqlite3.Connection) -> None:
    """The sandbox each verdict was given in ("bwrap", "landlock", "sandbox-exec", or "none"): a kernel
    judge's `proved` is kernel-checked only in a confirmed sandbox. Older attempts keep NULL (unknown)."""
    _run_script(db, "ALTER TABLE attempts ADD COLUMN sandbox TEXT")


@migration(8, 'decomposition_tree', adds=('targets.statement_key', 'sketches', 'holes'))
def _m8(db: sqlite3.Connection) -> None:
    """Decomposition as a first-class record: each sketch a target's planner wrote (its round, whether it
    elaborated, was masked, why it was abandoned) and each of its holes (the lemma statement, how it was
    obtained, its own target, its status: proved / false / exhausted / reused / cancelled). Targets get a
    statement key (the statement without its name, under its header) so a hole proved once is found again."""
    from proverctl.lean.targets import statement_key

    _run_script(
        db,
        """
        ALTER TABLE targets ADD COLUMN statement_key TEXT;
        CREATE INDEX targets_statement_key ON targets(statement_key);
        CREATE TABLE sketches (
            id INTEGER PRIMARY KEY,
            target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            round INTEGER NOT NULL DEFAULT 0,
            attempt_id INTEGER REFERENCES attempts(id) ON DELETE SET NULL,
            code TEXT,
            status TEXT NOT NULL,
            masked INTEGER NOT NULL DEFAULT 0,
            reasons TEXT NOT NULL DEFAULT '[]',
            composed_attempt INTEGER REFERENCES attempts(id) ON DELETE SET NULL,
            created REAL NOT NULL
        );
        CREATE INDEX sketches_target ON sketches(target_id);
        CREATE TABLE holes (
            id INTEGER PRIMARY KEY,
            sketch_id INTEGER NOT NULL REFERENCES sketches(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            target_id INTEGER REFERENCES targets(id) ON DELETE SET NULL,
            refutation_target_id INTEGER REFERENCES targets(id) ON DELETE SET NULL,
            name TEXT NOT NULL,
            statement TEXT NOT NULL,
            method TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            source_attempt INTEGER REFERENCES attempts(id) ON DELETE SET NULL,
            reason TEXT
        );
        CREATE INDEX holes_sketch ON holes(sketch_id);
        CREATE INDEX holes_target ON holes(target_id)
        """,
    )
    rows = db.execute("SELECT id, statement, header_hash FROM targets").fetchall()
    db.executemany("UPDATE targets SET statement_key = ? WHERE id = ?",
                   [(statement_key(statement, header), target_id) for target_id, statement, header in rows])


@migration(9, 'attempt_axioms', adds=('attempts.axioms',))
def _m9(db: sqlite3.Connection) -> None:
    """The axioms each checked proof depends on (Lean's `#print axioms` answer, a JSON list; NULL when
    the check printed none): what `runs diff` compares and flags."""
    _run_script(db, "ALTER TABLE attempts ADD COLUMN axioms TEXT")


@migration(10, 'proof_cache', adds=('proof_cache',))
def _m10(db: sqlite3.Connection) -> None:
    """The proof cache: what decides a statement's answer (its normalised statement, its header, the Lean
    profile with its toolchain and Mathlib, the judge) -> the attempt that proved it. A hit is a
    candidate, re-judged before it counts (proverctl.proving.cache)."""
    _run_script(
        db,
        """
        CREATE TABLE proof_cache (
            key TEXT PRIMARY KEY,
            attempt_id INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
            lean_profile TEXT,
            pins TEXT,
            judge TEXT,
            created REAL NOT NULL,
            hits INTEGER NOT NULL DEFAULT 0,
            last_hit REAL
        )
        """,
    )


@migration(11, 'attempt_endpoint', adds=('attempts.endpoint',))
def _m11(db: sqlite3.Connection) -> None:
    """Which endpoint answered each sample when a run had several (`--endpoint` repeated); NULL: the run's one."""
    _run_script(db, "ALTER TABLE attempts ADD COLUMN endpoint TEXT")


MIGRATIONS: tuple[Migration, ...] = tuple(sorted(_REGISTERED, key=lambda m: m.version))
assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1)), "migrations are numbered 1, 2, 3, ... without gaps"
# How a stored attempt reads back: its prompt from the prompts table (older rows kept theirs inline).
_ATTEMPT_COLUMNS = "a.*, COALESCE(a.prompt, p.text) AS prompt_text"
_ATTEMPT_FROM = "attempts a LEFT JOIN prompts p ON p.id = a.prompt_id"


class StoredPrompt(NamedTuple):
    """A prompt as the store keeps it (once per target): its JSON text and the digest of that text."""

    text: str
    digest: str

    @classmethod
    def of(cls, prompt: Any) -> "StoredPrompt":
        text = json.dumps(prompt, ensure_ascii=False)
        return cls(text, hashlib.sha256(text.encode("utf-8")).hexdigest()[:32])


@dataclass
class AttemptRow:
    target_id: int
    sample: int
    round: int
    prompt: Any  # the prompt's JSON value, or its StoredPrompt (made once for all the samples that send it)
    raw_output: str | None
    code: str | None
    verdict: str
    reasons: list[str]
    messages: list[dict]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    gen_seconds: float | None = None
    verify_seconds: float | None = None
    kind: str = "proof"  # proof | sketch | composed
    finish_reason: str | None = None  # why generation ended: stop | length | ...
    seed: int | None = None
    judge: str | None = None  # who decided: "repl" or the kernel judge, e.g. "safeverify@0c0f7dc"
    turns: list[dict] | None = None  # a multi-turn sample's conversation: sketches / tool calls and Lean's answers
    sandbox: str | None = None  # the sandbox the verdict was given in ("none": unsandboxed)
    axioms: list[str] | None = None  # what the proof depends on, as Lean's `#print axioms` said (None: not asked)
    endpoint: str | None = None  # the endpoint that answered, when the run had several


class Store:
    """Open with `Store(path)`; use as a context manager or call `close()`."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._prompt_ids: dict[tuple[int, str], int] = {}
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise UsageError(f"no attempt store at {self.path}", hint="`proverctl prove FILE` creates it")
        for attempt in range(OPEN_RETRIES):
            try:
                try:
                    self._open(readonly)
                except _NeedsMigration:
                    # A reader after an upgrade: migrate once when the file may be written, then read.
                    self.db.close()
                    if not os.access(self.path, os.W_OK):
                        raise
                    Store(self.path).close()
                    self._open(readonly)
                break
            except sqlite3.OperationalError as exc:
                # Two processes creating the store at once can collide on the WAL switch or the first
                # migration, where SQLite answers "locked" without waiting: try again.
                if getattr(self, "db", None) is not None:
                    self.db.close()
                if "locked" not in str(exc) or attempt == OPEN_RETRIES - 1:
                    raise StoreError(f"cannot use the attempt store {self.path}: {exc}",
                                     hint="another proverctl holds it; try again, or move the file aside") from exc
                time.sleep(0.05 * (attempt + 1))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot use the attempt store {self.path}: {exc}",
                                 hint="move the file aside (`proverctl paths` shows it) and run again") from exc

    def _open(self, readonly: bool) -> None:
        uri = f"file:{self.path}?mode=ro" if readonly else str(self.path)
        busy_ms = _busy_timeout_ms() if BUSY_TIMEOUT_MS == 30_000 else BUSY_TIMEOUT_MS  # tests may lower the constant
        self.db = sqlite3.connect(uri, uri=readonly, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {busy_ms}")
        self.db.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
        self._migrate(readonly)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _migrate(self, readonly: bool) -> None:
        exists = self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").fetchone()
        if not exists:
            if readonly:
                raise StoreError(f"{self.path} is not a proverctl attempt store", hint="check the path")
            self.db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)")
        done = {row[0] for row in self.db.execute("SELECT version FROM schema_migrations")}
        newest = max(done, default=0)
        if newest > len(MIGRATIONS):
            raise StoreError(
                f"the attempt store {self.path} was written by a newer proverctl (schema {newest}, this one knows {len(MIGRATIONS)})",
                hint="upgrade proverctl, or point PROVERCTL_HOME elsewhere",
            )
        for step in MIGRATIONS:
            if step.version in done:
                continue
            if readonly:
                raise _NeedsMigration(f"the attempt store {self.path} needs a migration ({step.name})",
                                      hint="run any proverctl command that writes")
            with self.transaction():
                if self.db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (step.version,)).fetchone():
                    continue  # another process migrated it meanwhile
                step.apply(self.db)
                self.db.execute("INSERT INTO schema_migrations (version, applied) VALUES (?, ?)", (step.version, time.time()))

    def transaction(self):
        return _Transaction(self.db)

    @property
    def schema_version(self) -> int:
        return self.db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0

    # -----------------------------------------------------------------------------------------
    # Runs and targets

    def create_run(self, *, kind: str, command: str, input: str, model: str | None, revision: str | None, engine: str | None,
                   endpoint: str | None, lean_profile: str | None, settings: dict, request: str | None = None,
                   served_model: str | None = None, engine_version: str | None = None) -> int:
        """A new run; `request` is the run's ProveRequest as stored JSON (prove and bench runs)."""
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO runs (kind, started, command, input, model, revision, engine, endpoint, lean_profile, settings, status,"
                " request, served_model, engine_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (kind, time.time(), command, input, model, revision, engine, endpoint, lean_profile, json.dumps(settings), request,
                 served_model, engine_version),
            )
            return int(cursor.lastrowid)

    def update_run(self, run_id: int, **fields: Any) -> None:
        if "settings" in fields:
            fields["settings"] = json.dumps(fields["settings"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def finish_run(self, run_id: int, status: str) -> None:
        self.update_run(run_id, status=status, finished=time.time())

    def add_targets(self, run_id: int, targets: list[dict], parent_id: int | None = None) -> list[int]:
        ids = []
        with self.transaction():
            start = self.db.execute("SELECT COALESCE(MAX(ordinal) + 1, 0) FROM targets WHERE run_id = ?", (run_id,)).fetchone()[0]
            for ordinal, t in enumerate(targets, start):
                cursor = self.db.execute(
                    "INSERT INTO targets (run_id, ordinal, file, name, kind, line, statement, doc, header, header_hash, parent_id, hint,"
                    " statement_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, ordinal, t["file"], t["name"], t["kind"], t["line"], t["statement"], t["doc"], t["header"],
                     t["header_hash"], parent_id, t.get("hint"), statement_key(t["statement"], t["header_hash"])),
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def set_target(self, target_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.db.execute(f"UPDATE targets SET {sets} WHERE id = ?", (*fields.values(), target_id))

    def add_attempt(self, row: AttemptRow, *, proved: bool = False) -> int:
        """Commit one attempt (and, when it proved its target, the target's status) in one transaction."""
        return self.add_attempts([(row, proved)])[0]

    def add_attempts(self, rows: list[tuple[AttemptRow, bool]]) -> list[int]:
        """Commit several attempts (each with whether it proved its target) in one transaction: all or
        none (proverctl.store.writer batches a run's attempts this way, off the event loop)."""
        try:
            with self.transaction():
                return [self._insert_attempt(row, proved) for row, proved in rows]
        except BaseException:
            self._prompt_ids.clear()  # prompt rows added in the rolled-back transaction are gone
            raise

    def _insert_attempt(self, row: AttemptRow, proved: bool) -> int:
        """One attempt's rows, inside the caller's transaction."""
        prompt_id = self._prompt_id(row.target_id, row.prompt)
        cursor = self.db.execute(
            "INSERT INTO attempts (target_id, sample, round, prompt_id, raw_output, code, verdict, reasons, messages,"
            " prompt_tokens, completion_tokens, gen_seconds, verify_seconds, created, kind, finish_reason, seed, judge, turns, sandbox,"
            " axioms, endpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row.target_id, row.sample, row.round, prompt_id, row.raw_output, row.code,
             row.verdict, json.dumps(row.reasons, ensure_ascii=False), json.dumps(row.messages, ensure_ascii=False),
             row.prompt_tokens, row.completion_tokens, row.gen_seconds, row.verify_seconds, time.time(), row.kind,
             row.finish_reason, row.seed, row.judge, json.dumps(row.turns, ensure_ascii=False) if row.turns else None,
             row.sandbox, json.dumps(row.axioms) if row.axioms is not None else None, row.endpoint),
        )
        attempt_id = int(cursor.lastrowid)
        if proved:
            self.db.execute("UPDATE targets SET status = 'proved', proved_attempt = ? WHERE id = ? AND proved_attempt IS NULL",
                            (attempt_id, row.target_id))
        return attempt_id

    def _prompt_id(self, target_id: int, prompt: Any) -> int | None:
        """The row of this target's prompt, added the first time (inside the caller's transaction)."""
        if prompt is None:
            return None
        text, digest = prompt if isinstance(prompt, StoredPrompt) else StoredPrompt.of(prompt)
        cached = self._prompt_ids.get((target_id, digest))
        if cached is not None:
            return cached
        found = self.db.execute("SELECT id FROM prompts WHERE target_id = ? AND digest = ?", (target_id, digest)).fetchone()
        prompt_id = found[0] if found else int(self.db.execute(
            "INSERT INTO prompts (target_id, digest, text) VALUES (?, ?, ?)", (target_id, digest, text)).lastrowid)
        if len(self._prompt_ids) > 4096:
            self._prompt_ids.clear()
        self._prompt_ids[(target_id, digest)] = prompt_id
        return prompt_id

    # -----------------------------------------------------------------------------------------
    # Reading

    def run(self, run_id: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def runs(self, limit: int = 50, offset: int = 0) -> list[dict]:
        rows = self.db.execute(
            "SELECT r.*, (SELECT COUNT(*) FROM targets t WHERE t.run_id = r.id AND t.parent_id IS NULL) AS n_targets,"
            " (SELECT COUNT(*) FROM targets t WHERE t.run_id = r.id AND t.parent_id IS NULL AND t.status = 'proved') AS n_proved"
            " FROM runs r ORDER BY r.id DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [dict(r) for r in rows]

    def newest_attempt(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()[0]

    def targets_touched(self, run_id: int, since_attempt: int) -> tuple[list[dict] | None, int]:
        """The run's targets that got attempts after attempt `since_attempt` (as `targets` gives them), and
        the newest attempt id: what a live view re-reads instead of the whole run (a few index lookups);
        None instead of the list when more than 500 changed."""
        newest = self.newest_attempt()
        ids = [r[0] for r in self.db.execute(
            "SELECT DISTINCT a.target_id FROM attempts a JOIN targets t ON t.id = a.target_id WHERE a.id > ? AND a.id <= ?"
            " AND t.run_id = ?", (since_attempt, newest, run_id))]
        if not ids:
            return [], newest
        if len(ids) > 500:
            return None, newest  # most of the run changed (a view that was not polling): read it whole
        return self.targets(run_id, ids=ids), newest

    def targets(self, run_id: int, status: str | None = None, *, ids: list[int] | None = None) -> list[dict]:
        """A run's targets with their attempt count and best verdict (proved > rejected > timeout > error),
        in one pass over the attempts index (`ids`: only these targets)."""
        query = (
            "SELECT t.*, COUNT(a.id) AS n_attempts,"
            " CASE WHEN SUM(a.verdict = 'proved') > 0 THEN 'proved' WHEN SUM(a.verdict = 'rejected') > 0 THEN 'rejected'"
            " WHEN SUM(a.verdict = 'timeout') > 0 THEN 'timeout' WHEN COUNT(a.id) > 0 THEN 'error' END AS best,"
            " (SELECT p.judge FROM attempts p WHERE p.id = t.proved_attempt) AS proved_judge,"
            " (SELECT p.sandbox FROM attempts p WHERE p.id = t.proved_attempt) AS proved_sandbox"
            " FROM targets t LEFT JOIN attempts a ON a.target_id = t.id WHERE t.run_id = ?"
        )
        params: tuple = (run_id,)
        if status:
            query += " AND t.status = ?"
            params += (status,)
        if ids is not None:
            query += f" AND t.id IN ({', '.join('?' for _ in ids)})"
            params += tuple(ids)
        return [dict(r) for r in self.db.execute(query + " GROUP BY t.id ORDER BY t.ordinal", params)]

    def proof_judges(self, run_ids: list[int]) -> list[tuple[int, str | None, str | None]]:
        """(run id, judge, sandbox) of the attempt that proved each top-level target of these runs: what
        splits a run's proofs into kernel-checked and REPL-checked."""
        if not run_ids:
            return []
        marks = ", ".join("?" for _ in run_ids)
        return [tuple(r) for r in self.db.execute(
            f"SELECT t.run_id, a.judge, a.sandbox FROM targets t JOIN attempts a ON a.id = t.proved_attempt"
            f" WHERE t.parent_id IS NULL AND t.status = 'proved' AND t.run_id IN ({marks})", run_ids)]

    def target(self, target_id: int) -> dict | None:
        row = self.db.execute("SELECT * FROM targets WHERE id = ?", (target_id,)).fetchone()
        return dict(row) if row else None

    # -- decomposition: sketches and holes (proverctl.decompose) ------------------------------------

    def add_sketch(self, target_id: int, ordinal: int, round_index: int, *, attempt_id: int | None, code: str | None, status: str,
                   reasons: list[str], masked: bool = False) -> int:
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO sketches (target_id, ordinal, round, attempt_id, code, status, masked, reasons, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (target_id, ordinal, round_index, attempt_id, code, status, int(masked), json.dumps(reasons), time.time()))
            return int(cursor.lastrowid)

    def set_sketch(self, sketch_id: int, **fields: Any) -> None:
        if "reasons" in fields:
            fields["reasons"] = json.dumps(fields["reasons"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.db.execute(f"UPDATE sketches SET {sets} WHERE id = ?", (*fields.values(), sketch_id))

    def add_hole(self, sketch_id: int, ordinal: int, *, name: str, statement: str, method: str, target_id: int | None = None,
                 status: str = "pending") -> int:
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO holes (sketch_id, ordinal, target_id, name, statement, method, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sketch_id, ordinal, target_id, name, statement, method, status))
            return int(cursor.lastrowid)

    def set_hole(self, hole_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.db.execute(f"UPDATE holes SET {sets} WHERE id = ?", (*fields.values(), hole_id))

    def proved_by_key(self, key: str, lean_profile: str | None, *, exclude: tuple[int, ...] = ()) -> dict | None:
        """The newest proving attempt of a target with this statement key (same statement, same header) in
        a run under the same Lean profile: a subgoal proved before, in this run or any other."""
        marks = ", ".join("?" for _ in exclude) or "NULL"
        row = self.db.execute(
            f"SELECT {_ATTEMPT_COLUMNS}, t.statement AS target_statement FROM targets t JOIN runs r ON r.id = t.run_id"
            f" JOIN attempts a ON a.id = t.proved_attempt LEFT JOIN prompts p ON p.id = a.prompt_id"
            f" WHERE t.statement_key = ? AND t.status = 'proved' AND r.lean_profile IS ? AND t.id NOT IN ({marks})"
            f" ORDER BY a.id DESC LIMIT 1", (key, lean_profile, *exclude)).fetchone()
        return _decode(dict(row)) if row else None

    def tree(self, target_id: int) -> list[dict]:
        """A target's decomposition: its sketches (newest last), each with its holes, each hole with its own
        target's status and attempts and, where it was decomposed in turn, its own tree."""
        sketches = []
        for s in self.db.execute("SELECT * FROM sketches WHERE target_id = ? ORDER BY ordinal, round, id", (target_id,)):
            sketch = dict(s)
            sketch["reasons"] = json.loads(sketch["reasons"] or "[]")
            sketch["masked"] = bool(sketch["masked"])
            holes = []
            for h in self.db.execute(
                    "SELECT h.*, t.status AS target_status, (SELECT COUNT(*) FROM attempts a WHERE a.target_id = h.target_id) AS attempts"
                    " FROM holes h LEFT JOIN targets t ON t.id = h.target_id WHERE h.sketch_id = ? ORDER BY h.ordinal", (sketch["id"],)):
                hole = dict(h)
                hole["tree"] = self.tree(hole["target_id"]) if hole["target_id"] else []
                holes.append(hole)
            sketch["holes"] = holes
            sketches.append(sketch)
        return sketches

    def find_target(self, run_id: int, name: str) -> dict | None:
        row = self.db.execute("SELECT * FROM targets WHERE run_id = ? AND (name = ? OR CAST(ordinal AS TEXT) = ?) ORDER BY ordinal LIMIT 1",
                              (run_id, name, name)).fetchone()
        return dict(row) if row else None

    def attempts(self, target_id: int, verdict: str | None = None, limit: int = 1000, offset: int = 0,
                 search: str | None = None) -> list[dict]:
        query = f"SELECT {_ATTEMPT_COLUMNS} FROM {_ATTEMPT_FROM} WHERE a.target_id = ?"
        params: tuple = (target_id,)
        if verdict:
            query += " AND a.verdict = ?"
            params += (verdict,)
        if search:
            like = f"%{search}%"
            query += " AND (a.code LIKE ? OR a.messages LIKE ? OR a.reasons LIKE ?)"
            params += (like, like, like)
        query += " ORDER BY a.sample, a.round LIMIT ? OFFSET ?"
        return [_decode(dict(r)) for r in self.db.execute(query, params + (limit, offset))]

    def attempt(self, attempt_id: int) -> dict | None:
        row = self.db.execute(f"SELECT {_ATTEMPT_COLUMNS} FROM {_ATTEMPT_FROM} WHERE a.id = ?", (attempt_id,)).fetchone()
        return _decode(dict(row)) if row else None

    def attempt_index(self, target_id: int) -> list[tuple[int, str]]:
        """(attempt id, verdict) of a target's attempts in order: for next/previous navigation."""
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT id, verdict FROM attempts WHERE target_id = ? ORDER BY sample, round", (target_id,))]

    def done_samples(self, target_id: int) -> set[tuple[int, int]]:
        return {(r[0], r[1]) for r in self.db.execute("SELECT sample, round FROM attempts WHERE target_id = ?", (target_id,))}

    def fingerprint(self) -> tuple:
        """Changes whenever a run starts, finishes or gets an attempt: what the TUI polls (a few index
        lookups, whatever the store's size) before reading anything else."""
        runs = self.db.execute("SELECT MAX(id), MAX(finished), SUM(status = 'running'), SUM(LENGTH(status)) FROM runs").fetchone()
        attempts = self.db.execute("SELECT MAX(id) FROM attempts").fetchone()
        return tuple(runs) + tuple(attempts)

    def sample_counts(self, run_id: int) -> list[tuple[int, int, int]]:
        """(target id, samples drawn, samples that proved it) per top-level target: what pass@k needs."""
        return [tuple(r) for r in self.db.execute(
            "SELECT t.id, COUNT(DISTINCT a.sample), COUNT(DISTINCT CASE WHEN a.verdict = 'proved' THEN a.sample END)"
            " FROM targets t LEFT JOIN attempts a ON a.target_id = t.id AND a.kind = 'proof'"
            " WHERE t.run_id = ? AND t.parent_id IS NULL GROUP BY t.id ORDER BY t.ordinal", (run_id,))]

    def usage_per_target(self, run_id: int) -> list[tuple[int, int, int]]:
        """(target id, completion tokens, Lean calls made while generating) per top-level target: what a
        benchmark spends per problem (Lean calls are the sketches and tool calls of multi-turn samples)."""
        return [tuple(r) for r in self.db.execute(
            "SELECT t.id, COALESCE(SUM(a.completion_tokens), 0), COALESCE(SUM((SELECT COUNT(*) FROM json_each(a.turns) j"
            " WHERE json_extract(j.value, '$.kind') IN ('sketch', 'tool_call', 'error'))), 0)"
            " FROM targets t LEFT JOIN attempts a ON a.target_id = t.id WHERE t.run_id = ? AND t.parent_id IS NULL"
            " GROUP BY t.id ORDER BY t.ordinal", (run_id,))]

    # -- the proof cache (proverctl.proving.cache) ---------------------------------------------------------

    def cache_get(self, key: str) -> dict | None:
        row = self.db.execute(f"SELECT {_ATTEMPT_COLUMNS}, c.key AS cache_key FROM proof_cache c JOIN attempts a ON a.id = c.attempt_id"
                              " LEFT JOIN prompts p ON p.id = a.prompt_id WHERE c.key = ?", (key,)).fetchone()
        return _decode(dict(row)) if row else None

    def cache_put(self, key: str, attempt_id: int, *, lean_profile: str | None, pins: str, judge: str) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO proof_cache (key, attempt_id, lean_profile, pins, judge, created) VALUES (?, ?, ?, ?, ?, ?)"
                            " ON CONFLICT(key) DO NOTHING", (key, attempt_id, lean_profile, pins, judge, time.time()))

    def cache_hit(self, key: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE proof_cache SET hits = hits + 1, last_hit = ? WHERE key = ?", (time.time(), key))

    def cache_drop(self, key: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM proof_cache WHERE key = ?", (key,))

    def cache_stats(self) -> list[dict]:
        """Per (Lean profile, pins, judge): entries, hits, newest entry."""
        return [dict(r) for r in self.db.execute(
            "SELECT lean_profile, pins, judge, COUNT(*) AS entries, SUM(hits) AS hits, MAX(created) AS newest FROM proof_cache"
            " GROUP BY lean_profile, pins, judge ORDER BY entries DESC")]

    def cache_prune(self, older_than: float | None, unused: bool) -> int:
        """Remove entries created before `older_than` (epoch seconds) and, with `unused`, never hit."""
        clauses, args = [], []
        if older_than is not None:
            clauses.append("COALESCE(last_hit, created) < ?")
            args.append(older_than)
        if unused:
            clauses.append("hits = 0")
        where = " AND ".join(clauses) or "1"
        with self.transaction():
            return self.db.execute(f"DELETE FROM proof_cache WHERE {where}", args).rowcount

    def cache_clear(self) -> int:
        with self.transaction():
            return self.db.execute("DELETE FROM proof_cache").rowcount

    def endpoint_counts(self, run_id: int) -> list[dict]:
        """Per endpoint of a run that had several: samples answered, completion tokens, generation seconds."""
        return [dict(r) for r in self.db.execute(
            "SELECT a.endpoint, COUNT(*) AS attempts, COALESCE(SUM(a.completion_tokens), 0) AS tokens,"
            " ROUND(COALESCE(SUM(a.gen_seconds), 0), 3) AS gen_seconds FROM attempts a JOIN targets t ON t.id = a.target_id"
            " WHERE t.run_id = ? AND a.endpoint IS NOT NULL GROUP BY a.endpoint ORDER BY a.endpoint", (run_id,))]

    def attempt_count(self, run_id: int) -> int:
        return self.db.execute("SELECT COUNT(*) FROM attempts a JOIN targets t ON t.id = a.target_id WHERE t.run_id = ?",
                               (run_id,)).fetchone()[0]

    def run_usage(self, run_id: int) -> tuple[int, int]:
        """(completion tokens, proofs checked by Lean) over every target of a run, subgoals included."""
        tokens, checks = self.db.execute(
            "SELECT COALESCE(SUM(a.completion_tokens), 0), COALESCE(SUM(a.kind IN ('proof', 'composed', 'reused', 'rejudge')"
            " AND a.code IS NOT NULL), 0) FROM attempts a JOIN targets t ON t.id = a.target_id WHERE t.run_id = ?", (run_id,)).fetchone()
        return int(tokens), int(checks)

    def proved_by_kind(self, run_id: int, kind: str) -> int:
        """Top-level targets of a run whose proof is an attempt of this kind (`composed`: by decomposition)."""
        return self.db.execute(
            "SELECT COUNT(*) FROM targets t JOIN attempts a ON a.id = t.proved_attempt WHERE t.run_id = ? AND t.parent_id IS NULL"
            " AND a.kind = ?", (run_id, kind)).fetchone()[0]

    def verdicts(self, run_id: int) -> set[str]:
        """The distinct verdicts of a run's attempts."""
        return {r[0] for r in self.db.execute(
            "SELECT DISTINCT a.verdict FROM attempts a JOIN targets t ON t.id = a.target_id WHERE t.run_id = ?", (run_id,))}

    def iter_attempts(self, run_id: int) -> Iterator[dict]:
        cursor = self.db.execute(
            f"SELECT {_ATTEMPT_COLUMNS}, t.name AS target_name, t.file AS target_file FROM {_ATTEMPT_FROM} JOIN targets t ON t.id = a.target_id"
            " WHERE t.run_id = ? ORDER BY t.ordinal, a.sample, a.round", (run_id,))
        for row in cursor:
            yield _decode(dict(row))

    def iter_attempt_lines(self, run_id: int, schema: int | None = None) -> Iterator[str]:
        """`iter_attempts` as JSON lines built by SQLite from the stored JSON text (nothing decoded and
        encoded again in Python): what `export` streams. With `schema`, each line starts with that field."""
        columns = [r[1] for r in self.db.execute("PRAGMA table_info(attempts)") if r[1] not in ("prompt", "prompt_id")]
        json_columns = {"reasons", "messages", "turns"}
        # Attempts recorded before who-decided (the judge) was stored say "unknown", never null.
        recorded_as = {c: f"a.{c}" for c in columns}
        recorded_as["judge"] = "COALESCE(a.judge, 'unknown')"
        pairs = ", ".join(f"'{c}', " + (f"json(a.{c})" if c in json_columns else recorded_as[c]) for c in columns)
        if schema is not None:
            pairs = f"'schema', {int(schema)}, " + pairs
        cursor = self.db.execute(
            f"SELECT json_object({pairs}, 'prompt', json(COALESCE(a.prompt, p.text)), 'target_name', t.name, 'target_file', t.file)"
            f" FROM {_ATTEMPT_FROM} JOIN targets t ON t.id = a.target_id WHERE t.run_id = ? ORDER BY t.ordinal, a.sample, a.round",
            (run_id,))
        for (line,) in cursor:
            yield line


def recorded_store() -> Store:
    """The data dir's attempt store, read-only: what `runs`, `show`, completion and the MCP tools read
    (a UsageError naming `prove` when nothing is recorded yet)."""
    from proverctl.paths import Paths

    return Store(Paths.resolve().store_db, readonly=True)


def local_time(ts: float | None) -> str:
    """A stored timestamp as people read it in `runs`, `show` and the TUI."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _decode(row: dict) -> dict:
    if "judge" in row and row["judge"] is None:
        row["judge"] = "unknown"  # recorded before who-decided was stored
    if "prompt_text" in row:
        row["prompt"] = row.pop("prompt_text")
    row.pop("prompt_id", None)
    for key in ("reasons", "messages", "prompt", "turns", "axioms"):
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    return row


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK): takes the write lock up front so two writers queue
    on the busy timeout instead of failing mid-transaction. A write that cannot happen (locked past
    the timeout, disk full, read-only) becomes a StoreError; nothing half-written stays."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self):
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(exc) from exc
        return self.db

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return False
            except sqlite3.Error as commit_error:
                exc = commit_error
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if isinstance(exc, sqlite3.Error):
            raise _store_error(exc) from exc
        return False


def _store_error(exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        waited = (_busy_timeout_ms() if BUSY_TIMEOUT_MS == 30_000 else BUSY_TIMEOUT_MS) / 1000
        return StoreError(f"the attempt store is locked by another process (waited {waited:g} s)",
                          hint="another proverctl is writing; try again, or raise PROVERCTL_STORE_BUSY_TIMEOUT")
    if "full" in text or "I/O" in text:
        return StoreError(f"the attempt store could not be written: {text}", hint="free disk space; committed attempts are safe")
    return StoreError(f"the attempt store could not be written: {text}", hint="check the file (`proverctl paths` shows it)")
