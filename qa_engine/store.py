"""The knowledge base on disk: one SQLite file, changed only inside transactions."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .corpus import ApprovedAnswer, Citation, Document
from .errors import DatabaseDamaged, DiskFull, QAError


def _import_sqlite_utils():
    """sqlite_utils imports pandas whenever it is installed (a quarter of a second of every
    start-up) only to store pandas timestamps, which we never do; it is hidden for that import."""
    hide = "pandas" not in sys.modules
    if hide:
        sys.modules["pandas"] = None  # an import of it fails with ImportError
    try:
        import sqlite_utils
    finally:
        if hide:
            del sys.modules["pandas"]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

DATABASE_NAME = "knowledge.db"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


MIGRATIONS: list[str] = [
    # 1: documents, articles and validity
    """
    CREATE TABLE documents (
        doc TEXT PRIMARY KEY, title TEXT NOT NULL, short_title TEXT NOT NULL,
        version_date TEXT NOT NULL, stated_effective TEXT, repeals TEXT NOT NULL,
        content_hash TEXT NOT NULL, source TEXT, ingested_at TEXT NOT NULL
    );
    CREATE TABLE articles (
        id TEXT PRIMARY KEY, doc TEXT NOT NULL REFERENCES documents(doc) ON DELETE CASCADE,
        article TEXT NOT NULL, ordinal INTEGER NOT NULL, chapter TEXT, section TEXT, text TEXT NOT NULL
    );
    CREATE INDEX articles_doc ON articles(doc);
    CREATE TABLE validity_overrides (
        doc TEXT PRIMARY KEY, effective_from TEXT, effective_to TEXT, note TEXT, by TEXT, at TEXT
    );
    """,
    # 2: approved answers, each change a new version
    """
    CREATE TABLE answers (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, version INTEGER NOT NULL,
        question TEXT NOT NULL, alternatives TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL,
        category TEXT, effective_from TEXT, effective_to TEXT, queue_id INTEGER,
        updated_at TEXT NOT NULL, updated_by TEXT
    );
    CREATE TABLE answer_versions (
        answer_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
        change TEXT NOT NULL, by TEXT, at TEXT NOT NULL, PRIMARY KEY (answer_id, version)
    );
    """,
    # 3: expert queue, complaint desk, query log, feedback
    """
    CREATE TABLE queue (
        id INTEGER PRIMARY KEY, normalised TEXT NOT NULL, question TEXT NOT NULL, kind TEXT NOT NULL,
        count INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, status TEXT NOT NULL,
        confidence REAL, contact TEXT, claimed_by TEXT, answer_id TEXT, due_at TEXT
    );
    CREATE UNIQUE INDEX queue_open_question ON queue(normalised) WHERE status IN ('open', 'claimed') AND kind = 'auto';
    CREATE TABLE complaints (
        id INTEGER PRIMARY KEY, question TEXT NOT NULL, category TEXT NOT NULL, contact TEXT,
        status TEXT NOT NULL, assigned_to TEXT, created_at TEXT NOT NULL, history TEXT NOT NULL
    );
    CREATE TABLE query_log (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, question TEXT NOT NULL, as_of TEXT, route TEXT NOT NULL,
        confidence REAL NOT NULL, top_id TEXT, channel TEXT
    );
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, answer_id TEXT NOT NULL, query_id INTEGER,
        helpful INTEGER NOT NULL, comment TEXT
    );
    """,
    # 4: curation: queue item history, and curated dictionary entries (each change a new version)
    """
    ALTER TABLE queue ADD COLUMN history TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE dictionary_entries (
        kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, status TEXT NOT NULL,
        version INTEGER NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT, PRIMARY KEY (kind, key)
    );
    CREATE TABLE dictionary_versions (
        kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL, status TEXT NOT NULL,
        change TEXT NOT NULL, by TEXT, at TEXT NOT NULL, PRIMARY KEY (kind, key, version)
    );
    CREATE INDEX query_log_at ON query_log(at);
    CREATE INDEX feedback_at ON feedback(at);
    """,
    # 5: API keys for the agent console and curator endpoints; only a SHA-256 of each key is kept
    """
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL, created_by TEXT NOT NULL, last_used_at TEXT,
        revoked_at TEXT, revoked_by TEXT
    );
    CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL;
    """,
    # 6: a number that changes with every answer written, read before every question is answered
    # (the aggregate over all answers it replaces took 1.8 ms at 5,000 answers)
    """
    CREATE TABLE answers_revision (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
    INSERT INTO answers_revision VALUES (1, random());
    """,
]


class Store:
    """All reads and writes of the knowledge base go through here; SQL is always parameterised."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QAError(f"cannot make the knowledge base folder {path.parent}: {exc.strerror or exc}") from None
        self._local = threading.local()
        # every live thread's, for close(); a thread's goes (and closes) with the thread
        self._databases: weakref.WeakSet = weakref.WeakSet()
        self._databases_lock = threading.Lock()
        # Writes of this process's threads take turns here rather than in SQLite's busy wait.
        self._write_lock = threading.RLock()
        self._depth = 0
        try:
            self.migrate()
        except sqlite3.DatabaseError as exc:
            self.close()
            if exc.sqlite_errorname in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                raise DatabaseDamaged(path, str(exc)) from None
            if exc.sqlite_errorname == "SQLITE_CANTOPEN":
                raise QAError(f"cannot open the knowledge base {path} ({exc})") from None
            raise

    @property
    def db(self) -> "sqlite_utils.Database":
        """This thread's connection. Threads sharing one connection failed under load: one thread's
        read kept a snapshot open that another thread's write could not move past once another
        process had written ("database is locked" at once, whatever the busy timeout)."""
        db = getattr(self._local, "db", None)
        if db is None:
            connection = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL stays consistent through crashes; only a power cut can lose the last commits.
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute("PRAGMA foreign_keys=ON")
                connection.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error:
                connection.close()
                raise
            db = self._local.db = sqlite_utils.Database(connection)
            with self._databases_lock:
                self._databases.add(db)
        return db

    def migrate(self) -> None:
        """Bring the database to the schema this version reads (each step all or nothing)."""
        current = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self):
        """One atomic change. Nested calls (in the thread holding the write lock) join the outer
        transaction (an import of many answers is all or nothing)."""
        with self._write_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException as exc:
                if self.db.conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                    self.db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorname == "SQLITE_FULL":
                    raise DiskFull(self.path) from None
                raise
            finally:
                self._depth = 0

    def close(self) -> None:
        """Close every thread's connection (check_same_thread=False lets this thread close them)."""
        with self._databases_lock:
            for db in list(self._databases):
                db.conn.close()
            self._databases.clear()
        self._local = threading.local()

    # ---- documents -----------------------------------------------------

    def document_hash(self, doc: str) -> str | None:
        row = self.db.execute("SELECT content_hash FROM documents WHERE doc = ?", [doc]).fetchone()
        return row[0] if row else None

    def save_document(self, document: Document) -> None:
        """Insert or replace one document and all its articles, atomically."""
        with self.transaction():
            self.db.execute("DELETE FROM documents WHERE doc = ?", [document.doc])
            self.db["documents"].insert(
                {
                    "doc": document.doc,
                    "title": document.title,
                    "short_title": document.short_title,
                    "version_date": document.version_date,
                    "stated_effective": document.stated_effective,
                    "repeals": json.dumps(document.repeals, ensure_ascii=False),
                    "content_hash": document.content_hash,
                    "source": document.source,
                    "ingested_at": utc_now(),
                }
            )
            self.db["articles"].insert_all(
                {
                    "id": a.id,
                    "doc": a.doc,
                    "article": a.article,
                    "ordinal": a.ordinal,
                    "chapter": a.chapter,
                    "section": a.section,
                    "text": a.text,
                }
                for a in document.articles
            )

    def documents(self) -> list[dict]:
        rows = self.db.execute_returning_dicts("SELECT * FROM documents ORDER BY doc")
        for row in rows:
            row["repeals"] = json.loads(row["repeals"])
        return rows

    def articles(self) -> list[dict]:
        return self.db.execute_returning_dicts("SELECT * FROM articles ORDER BY doc, ordinal")

    def article_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM articles").fetchone()[0]

    def iter_articles(self, batch: int = 5000) -> Iterator[dict]:
        """Every article in index order (as ``articles``), read ``batch`` rows at a time on a
        read-only connection of its own: a build of a million articles never holds them all,
        sees one consistent snapshot, and does not tie up the connection a server shares."""
        connection = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
        try:
            cursor = connection.execute("SELECT * FROM articles ORDER BY doc, ordinal")
            columns = [description[0] for description in cursor.description]
            while rows := cursor.fetchmany(batch):
                for row in rows:
                    yield dict(zip(columns, row))
        finally:
            connection.close()

    def article(self, doc: str, article: str) -> dict | None:
        rows = self.db.execute_returning_dicts("SELECT * FROM articles WHERE doc = ? AND article = ?", [doc, article])
        return rows[0] if rows else None

    def validity_overrides(self) -> dict[str, dict]:
        rows = self.db.execute_returning_dicts("SELECT * FROM validity_overrides")
        return {row["doc"]: row for row in rows}

    def set_validity_override(self, doc: str, effective_from: str | None, effective_to: str | None, note: str, by: str) -> None:
        with self.transaction():
            self.db["validity_overrides"].upsert(
                {"doc": doc, "effective_from": effective_from, "effective_to": effective_to, "note": note, "by": by, "at": utc_now()},
                pk="doc",
            )

    # ---- approved answers ------------------------------------------------

    def answer(self, answer_id: str) -> dict | None:
        rows = self.db.execute_returning_dicts("SELECT * FROM answers WHERE id = ?", [answer_id])
        return _decode_answer(rows[0]) if rows else None

    def answers(self, status: str | None = None) -> list[dict]:
        if status:
            rows = self.db.execute_returning_dicts("SELECT * FROM answers WHERE status = ? ORDER BY id", [status])
        else:
            rows = self.db.execute_returning_dicts("SELECT * FROM answers ORDER BY id")
        return [_decode_answer(row) for row in rows]

    def save_answer_version(
        self,
        answer: ApprovedAnswer,
        status: str,
        change: str,
        by: str,
        queue_id: int | None = None,
        expected_version: int | None = None,
    ) -> int:
        """Write a new version of an answer (the first version creates it); returns the version number.

        With ``expected_version`` (0 for "must not exist yet"), refuses with Conflict when someone
        else changed the answer since it was read, so no curator's update is silently lost."""
        with self.transaction():
            row = self.db.execute("SELECT version FROM answers WHERE id = ?", [answer.id]).fetchone()
            current = row[0] if row else 0
            if expected_version is not None and current != expected_version:
                raise _version_conflict(answer.id, current, expected_version)
            version = current + 1
            record = {
                "id": answer.id,
                "status": status,
                "version": version,
                "question": answer.question,
                "alternatives": json.dumps(answer.alternatives, ensure_ascii=False),
                "answer": answer.answer,
                "citations": json.dumps([c.__dict__ for c in answer.citations], ensure_ascii=False),
                "category": answer.category,
                "effective_from": answer.effective_from,
                "effective_to": answer.effective_to,
                "queue_id": queue_id,
                "updated_at": utc_now(),
                "updated_by": by,
            }
            self.db["answers"].upsert(record, pk="id")
            self.db.execute("UPDATE answers_revision SET revision = random()")  # random: a restored backup's differs too
            self.db["answer_versions"].insert(
                {
                    "answer_id": answer.id,
                    "version": version,
                    "data": json.dumps(record, ensure_ascii=False),
                    "change": change,
                    "by": by,
                    "at": record["updated_at"],
                }
            )
        return version

    def answers_revision(self) -> int:
        """Changes whenever any answer changes: lets a running service notice edits cheaply."""
        return self.db.execute("SELECT revision FROM answers_revision").fetchone()[0]

    # ---- queue, complaints, logs -----------------------------------------

    def flag_question(self, normalised: str, question: str, confidence: float | None, due_at: str) -> int:
        """Add a low-confidence question to the expert queue, or count it again if already open."""
        now = utc_now()
        with self.transaction():
            row = self.db.execute(
                "SELECT id FROM queue WHERE normalised = ? AND kind = 'auto' AND status IN ('open', 'claimed')",
                [normalised],
            ).fetchone()
            if row:
                self.db.execute("UPDATE queue SET count = count + 1, last_seen = ? WHERE id = ?", [now, row[0]])
                return row[0]
            return self.db.execute(
                "INSERT INTO queue (normalised, question, kind, count, first_seen, last_seen, status, confidence, due_at)"
                " VALUES (?, ?, 'auto', 1, ?, ?, 'open', ?, ?)",
                [normalised, question, now, now, confidence, due_at],
            ).lastrowid

    def add_queue_item(self, question: str, kind: str, contact: dict | None, due_at: str) -> int:
        """An explicit queue item (an agent's flag or a callback request); never merged with others."""
        now = utc_now()
        with self.transaction():
            return self.db["queue"].insert(
                {
                    "normalised": question,
                    "question": question,
                    "kind": kind,
                    "count": 1,
                    "first_seen": now,
                    "last_seen": now,
                    "status": "open",
                    "contact": json.dumps(contact, ensure_ascii=False) if contact else None,
                    "due_at": due_at,
                }
            ).last_pk

    def add_feedback(self, answer_id: str, helpful: bool, query_id: int | None, comment: str) -> int:
        with self.transaction():
            return self.db["feedback"].insert(
                {"at": utc_now(), "answer_id": answer_id, "query_id": query_id, "helpful": int(helpful), "comment": comment}
            ).last_pk

    def queue_items(self, status: str | None = None) -> list[dict]:
        if status:
            return self.db.execute_returning_dicts("SELECT * FROM queue WHERE status = ? ORDER BY id", [status])
        return self.db.execute_returning_dicts("SELECT * FROM queue ORDER BY id")

    def add_complaint(self, question: str, category: str, contact: dict | None) -> int:
        now = utc_now()
        with self.transaction():
            return self.db["complaints"].insert(
                {
                    "question": question,
                    "category": category,
                    "contact": json.dumps(contact, ensure_ascii=False) if contact else None,
                    "status": "open",
                    "created_at": now,
                    "history": json.dumps([{"at": now, "event": "opened"}], ensure_ascii=False),
                }
            ).last_pk

    def complaints(self) -> list[dict]:
        return self.db.execute_returning_dicts("SELECT * FROM complaints ORDER BY id")

    def log_query(self, question: str, as_of: str, route: str, confidence: float, top_id: str | None) -> int:
        with self.transaction():  # one statement: it runs on every question asked
            return self.db.execute(
                "INSERT INTO query_log (at, question, as_of, route, confidence, top_id) VALUES (?, ?, ?, ?, ?, ?)",
                [utc_now(), question, as_of, route, confidence, top_id],
            ).lastrowid

    def delete_logged_before(self, cutoff: str, batch: int = 10_000) -> dict[str, int]:
        """Remove the questions and feedback logged before ``cutoff`` (an ISO time), a batch at a
        time, so a running server's writes wait for one batch at most."""
        removed = {}
        for name, statement in (("questions", "DELETE FROM query_log WHERE id IN (SELECT id FROM query_log WHERE at < ? LIMIT ?)"),
                                ("feedback", "DELETE FROM feedback WHERE id IN (SELECT id FROM feedback WHERE at < ? LIMIT ?)")):
            removed[name] = 0
            while True:
                with self.transaction():
                    count = self.db.execute(statement, [cutoff, batch]).rowcount
                removed[name] += count
                if count < batch:
                    break
        return removed

    def counts(self) -> dict[str, int]:
        def count(sql: str) -> int:
            return self.db.execute(sql).fetchone()[0]

        return {
            "documents": count("SELECT count(*) FROM documents"),
            "articles": count("SELECT count(*) FROM articles"),
            "answers_approved": count("SELECT count(*) FROM answers WHERE status = 'approved'"),
            "answers_draft": count("SELECT count(*) FROM answers WHERE status = 'draft'"),
            "queue_open": count("SELECT count(*) FROM queue WHERE status IN ('open', 'claimed')"),
            "complaints_open": count("SELECT count(*) FROM complaints WHERE status != 'closed'"),
            "queries_logged": count("SELECT count(*) FROM query_log"),
        }


def _version_conflict(answer_id: str, current: int, expected: int):
    from .errors import Conflict, NotFound

    if current == 0:
        return NotFound(f'no answer {answer_id}: see "qa answers list"')
    if expected == 0:
        return Conflict(f'answer {answer_id} already exists: change it with "qa answers edit {answer_id}"')
    return Conflict(
        f"answer {answer_id} is at version {current}, not {expected}: someone changed it meanwhile; "
        f'look at "qa answers show {answer_id}" and make your change again'
    )


def _decode_answer(row: dict) -> dict:
    row = dict(row)
    row["alternatives"] = json.loads(row["alternatives"])
    row["citations"] = json.loads(row["citations"])
    return row


def answer_from_row(row: dict) -> ApprovedAnswer:
    return ApprovedAnswer(
        id=row["id"],
        question=row["question"],
        answer=row["answer"],
        alternatives=list(row["alternatives"]),
        citations=[Citation(c["doc"], c["article"]) for c in row["citations"]],
        category=row.get("category") or "",
        effective_from=row.get("effective_from"),
        effective_to=row.get("effective_to"),
    )
