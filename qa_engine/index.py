"""A built index: a directory of artefacts with a manifest that describes it.

Builds go to ``<home>/indexes/<build id>.tmp``, are renamed to ``<home>/indexes/<build id>``
when complete, and then ``<home>/CURRENT`` is replaced atomically to point at them. A crash at
any point leaves the previous index serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dense import DenseIndex, Embedder
from .errors import IndexMismatch, IndexNotBuilt
from .lexical import BM25Index

FORMAT_VERSION = 2
CURRENT_POINTER = "CURRENT"
KEEP_OLD_BUILDS = 2


@dataclass
class Passage:
    """An article as retrieval sees it, with its validity baked in at build time."""

    id: str
    doc: str
    article: str
    title: str
    chapter: str
    text: str
    effective_from: str
    effective_to: str | None

    def in_force(self, as_of: str) -> bool:
        return self.effective_from <= as_of and (self.effective_to is None or as_of < self.effective_to)

    def status(self, as_of: str) -> str:
        if as_of < self.effective_from:
            return "not_yet_in_force"
        if self.effective_to is not None and as_of >= self.effective_to:
            return "superseded"
        return "in_force"


@dataclass
class BuiltIndex:
    folder: Path
    manifest: dict
    passages: list[Passage]
    bm25: BM25Index
    dense: DenseIndex
    homophones: dict

    @property
    def build_id(self) -> str:
        return self.manifest["build_id"]


def corpus_hash(passages: list[Passage]) -> str:
    digest = hashlib.sha256()
    for p in passages:
        digest.update(f"{p.id}\t{p.effective_from}\t{p.effective_to}\t{p.text}\n".encode())
    return digest.hexdigest()[:16]


def write_index(
    home: Path,
    passages: list[Passage],
    bm25: BM25Index,
    vectors: np.ndarray,
    embedder: Embedder,
    dictionary_fingerprint: str,
    homophones: dict,
    dense_kind: str = "flat",
) -> Path:
    """Write a complete index next to the current one and switch to it atomically."""
    builds = home / "indexes"
    builds.mkdir(parents=True, exist_ok=True)
    remove_abandoned_builds(builds)
    build_id, scratch = _new_scratch(builds)
    bm25.save(scratch)
    DenseIndex.build(vectors, dense_kind).save(scratch / "dense.faiss")
    (scratch / "homophones.json").write_text(json.dumps(homophones, ensure_ascii=False), "utf-8")
    with open(scratch / "passages.jsonl", "w", encoding="utf-8") as out:
        for p in passages:
            out.write(json.dumps(p.__dict__, ensure_ascii=False) + "\n")
    manifest = {
        "format_version": FORMAT_VERSION,
        "build_id": build_id,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "embedder": _portable_name(embedder.name, home),
        "dimension": int(vectors.shape[1]),
        "normalised": True,
        "dense_index": dense_kind,
        "passages": len(passages),
        "corpus_hash": corpus_hash(passages),
        "dictionary_hash": dictionary_fingerprint,
    }
    (scratch / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), "utf-8")
    _fsync_folder(scratch)
    final = builds / build_id
    os.replace(scratch, final)
    pointer = home / f"{CURRENT_POINTER}.tmp"
    pointer.write_text(build_id, "utf-8")
    os.replace(pointer, home / CURRENT_POINTER)
    _remove_old_builds(builds, keep=build_id)
    return final


def _portable_name(embedder_name: str, home: Path) -> str:
    """A model kept inside the home is recorded relative to it, so a home can move (backups)."""
    try:
        return Path(embedder_name).resolve().relative_to(home.resolve()).as_posix()
    except ValueError:
        return embedder_name


def current_build_id(home: Path) -> str | None:
    try:
        return (home / CURRENT_POINTER).read_text("utf-8").strip() or None
    except FileNotFoundError:
        return None


def load_index(home: Path, embedder_name: str | None = None, dimension: int | None = None) -> BuiltIndex:
    build_id = current_build_id(home)
    if build_id is None:
        raise IndexNotBuilt()
    folder = home / "indexes" / build_id
    try:
        manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        raise IndexMismatch(f"the index at {folder} is incomplete or damaged: run \"qa build\" again") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"the index at {folder} has format {manifest.get('format_version')}, this version reads {FORMAT_VERSION}: "
            'run "qa build" again'
        )
    if embedder_name is not None and manifest["embedder"] != embedder_name:
        raise IndexMismatch(
            f"the index was built with embedder {manifest['embedder']!r} but {embedder_name!r} is configured: "
            'run "qa build" again or change QA_EMBED_MODEL'
        )
    if dimension is not None and manifest["dimension"] != dimension:
        raise IndexMismatch(f"the index has dimension {manifest['dimension']}, the embedder gives {dimension}")
    with open(folder / "passages.jsonl", encoding="utf-8") as lines:
        passages = [Passage(**json.loads(line)) for line in lines]
    homophones = json.loads((folder / "homophones.json").read_text("utf-8"))
    return BuiltIndex(folder, manifest, passages, BM25Index.load(folder), DenseIndex.load(folder / "dense.faiss"), homophones)


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _new_scratch(builds: Path) -> tuple[str, Path]:
    """A fresh build id (time to the millisecond, then the process id) and its scratch folder;
    two builds in one second of one process get different ids."""
    while True:
        now = time.time()
        build_id = time.strftime("%Y%m%dT%H%M%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}-{os.getpid()}"
        scratch = builds / f"{build_id}.tmp"
        if not (builds / build_id).exists():
            try:
                scratch.mkdir()
                return build_id, scratch
            except FileExistsError:
                pass
        time.sleep(0.002)


def remove_abandoned_builds(builds: Path) -> list[str]:
    """Delete ``<build id>.tmp`` folders left by builds that were killed; a build still running
    (its process id, the suffix of the build id, is alive) keeps its folder."""
    removed = []
    for scratch in builds.glob("*.tmp"):
        try:
            pid = int(scratch.name[: -len(".tmp")].rsplit("-", 1)[1])
        except (IndexError, ValueError):
            pid = None
        if pid is not None and _process_alive(pid):
            continue
        shutil.rmtree(scratch, ignore_errors=True)
        removed.append(scratch.name)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_old_builds(builds: Path, keep: str) -> None:
    """Keep the newest few builds: a server still reading an older one is not cut off mid-request."""
    finished = sorted((p for p in builds.iterdir() if p.is_dir() and not p.name.endswith(".tmp")), key=lambda p: p.name)
    for old in finished[:-KEEP_OLD_BUILDS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
