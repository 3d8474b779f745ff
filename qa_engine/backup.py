"""Backups of a knowledge base home, and restoring them.

A backup is a folder::

    backup.json          what is in it, with a SHA-256 for every file
    knowledge.db         the SQLite online backup: a consistent copy even while others write
    indexes/<build id>/  the index CURRENT named, checked against its manifest
    models/<name>/       the corpus-trained embedding model the index was built with, if in the home

It is written to ``DEST.partial`` and renamed to ``DEST`` when complete, so a folder named like the
backup is always whole. Restoring checks every checksum first; the database comes back through the
online backup API as well (one write transaction: other connections, a running server included,
see the old or the restored knowledge base, never a mix) after the current one is saved to
``<home>/replaced/<time>/``, and the index is switched in through CURRENT like a new build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

from .errors import InvalidInput, QAError
from .index import CURRENT_POINTER, current_build_id, load_index

BACKUP_FORMAT = 1
MANIFEST = "backup.json"
DATABASE = "knowledge.db"


class BackupError(QAError):
    code = "backup_error"


def backup(home: Path, live: sqlite3.Connection, dest: Path) -> dict:
    """Copy the knowledge base (through ``live``, its open connection) and the current index to ``dest``."""
    home, dest = Path(home), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"{dest} already exists and is not empty: give a new folder for the backup")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        with sqlite3.connect(partial / DATABASE) as copy:
            live.backup(copy)
        copy.close()
        manifest = {"format": BACKUP_FORMAT, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "home": str(home.resolve()),
                    "database": _database_facts(partial / DATABASE), "index": None, "model": None}
        build_id = current_build_id(home)
        if build_id is not None:
            manifest["index"], manifest["model"] = _copy_index(home, build_id, partial)
        manifest["files"] = {str(p.relative_to(partial)): _sha256(p) for p in sorted(partial.rglob("*")) if p.is_file()}
        (partial / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), "utf-8")
        if dest.exists():
            dest.rmdir()
        os.replace(partial, dest)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, (OSError, sqlite3.OperationalError)):  # a full disk, a folder not writable
            raise BackupError(f"cannot write the backup to {dest} ({_reason(exc)}); nothing was left there") from None
        raise
    return manifest


def _reason(exc: Exception) -> str:
    if isinstance(exc, shutil.Error):  # copytree lists each file's failure: "[Errno 28] No space left on device: 'a' -> 'b'"
        return str(exc.args[0][0][2]).split(": '", 1)[0]
    return getattr(exc, "strerror", None) or str(exc)


def _copy_index(home: Path, build_id: str, partial: Path) -> tuple[dict, str | None]:
    index = load_index(home)  # refuses a damaged or foreign-format index with a clear message
    with open(index.folder / "passages.jsonl", encoding="utf-8") as lines:
        count = sum(1 for _ in lines)
    if count != index.manifest["passages"]:
        raise BackupError(f"the index {build_id} lists {index.manifest['passages']} passages but holds {count}: "
                          'run "qa build" before backing up')
    shutil.copytree(index.folder, partial / "indexes" / index.build_id)
    model = None
    embedder = Path(index.manifest["embedder"])
    if not embedder.is_absolute():  # a model inside the home is named relative to it
        embedder = home / embedder
    models = (home / "models").resolve()
    if embedder.resolve().parent == models and embedder.is_dir():
        model = embedder.name
        shutil.copytree(embedder, partial / "models" / model)
    return {"build_id": index.build_id, "passages": count, "embedder": index.manifest["embedder"]}, model


def _database_facts(path: Path) -> dict:
    with sqlite3.connect(path) as db:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the copied database failed its integrity check ({check})")
        facts = {"user_version": db.execute("PRAGMA user_version").fetchone()[0]}
        for table in ("documents", "articles", "answers"):
            facts[table] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # fixed names, no input
    db.close()
    return facts


def verify(src: Path) -> dict:
    """The backup's manifest, after checking every file against its checksum."""
    src = Path(src)
    try:
        manifest = json.loads((src / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{src} is not a backup: it has no {MANIFEST} (make one with \"qa backup DEST\")") from None
    except json.JSONDecodeError as exc:
        raise BackupError(f"{src / MANIFEST} is damaged ({exc.msg})") from None
    if manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"{src} has backup format {manifest.get('format')}, this version reads {BACKUP_FORMAT}")
    present = {str(p.relative_to(src)) for p in src.rglob("*") if p.is_file()} - {MANIFEST}
    missing = sorted(set(manifest["files"]) - present)
    if missing:
        raise BackupError(f"{src} is incomplete: {missing[0]} is missing")
    for name, digest in manifest["files"].items():
        if _sha256(src / name) != digest:
            raise BackupError(f"{src / name} does not match its checksum in {MANIFEST}: the backup is damaged")
    return manifest


def restore(home: Path, live: sqlite3.Connection, src: Path, force: bool = False) -> dict:
    """Bring back the backup at ``src`` into ``home``; the knowledge base replaced is kept aside."""
    home, src = Path(home), Path(src)
    manifest = verify(src)
    current = {t: live.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("documents", "answers", "query_log")}
    if any(current.values()) and not force:
        raise InvalidInput(f"{home} already holds a knowledge base ({current['documents']} documents, "
                           f"{current['answers']} answers): pass --force to replace it (it is kept in {home / 'replaced'})")
    with sqlite3.connect(src / DATABASE) as check:
        version = check.execute("PRAGMA user_version").fetchone()[0]
    check.close()
    ours = live.execute("PRAGMA user_version").fetchone()[0]
    if version > ours:
        raise BackupError(f"{src} was made by a newer qa_engine (schema {version}, this one reads up to {ours})")

    kept = None
    try:
        if any(current.values()):
            kept = home / "replaced" / time.strftime("%Y%m%dT%H%M%S")
            kept.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(kept / DATABASE) as aside:
                live.backup(aside)
            aside.close()
        with sqlite3.connect(src / DATABASE) as source:
            source.backup(live)  # one transaction: the whole backup or nothing
        source.close()
    except (OSError, sqlite3.OperationalError) as exc:
        if kept is not None:
            shutil.rmtree(kept, ignore_errors=True)
        raise BackupError(f"cannot restore into {home} ({_reason(exc)}): nothing was changed") from None
    index = manifest.get("index")
    try:
        if index is not None:
            _restore_index(home, src, manifest)
        else:
            (home / CURRENT_POINTER).unlink(missing_ok=True)
    except OSError as exc:
        raise BackupError(f"the knowledge base was restored but not its index ({_reason(exc)}): "
                          'free some space and run "qa build"') from None
    return {"documents": manifest["database"]["documents"], "answers": manifest["database"]["answers"],
            "index": index["build_id"] if index else None, "replaced": str(kept) if kept else None}


def _restore_index(home: Path, src: Path, manifest: dict) -> None:
    build_id = manifest["index"]["build_id"]
    model = manifest.get("model")
    if model and not (home / "models" / model).exists():
        scratch = home / "models" / f"{model}.restoring"
        _copy_whole(src / "models" / model, scratch)
        os.replace(scratch, home / "models" / model)
    target = home / "indexes" / build_id
    if not target.exists():
        scratch = home / "indexes" / f"{build_id}.restoring"
        _copy_whole(src / "indexes" / build_id, scratch)
        if model:  # older indexes named the model by its absolute path in the home it came from
            index_manifest = json.loads((scratch / "manifest.json").read_text("utf-8"))
            index_manifest["embedder"] = f"models/{model}"
            (scratch / "manifest.json").write_text(json.dumps(index_manifest, ensure_ascii=False, indent=2), "utf-8")
        os.replace(scratch, target)
    pointer = home / f"{CURRENT_POINTER}.tmp"
    pointer.write_text(build_id, "utf-8")
    os.replace(pointer, home / CURRENT_POINTER)


def _copy_whole(source: Path, scratch: Path) -> None:
    """Copy a folder to ``scratch``, or leave nothing there."""
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        shutil.copytree(source, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
