"""A built index: a directory of artefacts with a manifest that describes it.

Builds go to ``<home>/indexes/<build id>.tmp``, are renamed to ``<home>/indexes/<build id>``
when complete, and then ``<home>/CURRENT`` is replaced atomically to point at them. A crash at
any point leaves the previous index serving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .corpus import short_title_of
from .dense import DenseIndex, Embedder
from .errors import IndexMismatch, IndexNotBuilt
from .law_model import LawModel
from .lexical import BM25Index
from .scope import ScopeModel

FORMAT_VERSION = 8  # 3: BM25 stored as posting lists (terms x passages); 4: answer types stored; 5: article questions' vectors; 6: their graph index; 7: tones in the homophone table; 8: the law model
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
    questions: tuple[str, ...] = ()  # what callers ask that it answers (corpus/article_questions.jsonl)

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
    answer_types: np.ndarray  # per passage, bits for the kinds of question it answers (manifest "answer_types")
    questions: DenseIndex | None  # the passages' curated questions, passage after passage, embedded (None: none)
    scope: ScopeModel | None  # whether a question is one the knowledge base answers (None: not trained)
    laws: LawModel | None  # which law a question is about (None: not trained)

    @property
    def build_id(self) -> str:
        return self.manifest["build_id"]


def passage_text(passage: Passage) -> str:
    """What is indexed of a passage (BM25 terms and its vector): law, chapter, text, and the
    questions callers ask that it answers."""
    return " ".join([article_text(passage), *passage.questions])


def article_text(passage: Passage) -> str:
    """The law's own words of a passage: law, chapter, text."""
    return f"{short_title_of(passage.doc)} {passage.chapter} {passage.text}"


def _hash_line(p: Passage) -> bytes:
    return f"{p.id}\t{p.effective_from}\t{p.effective_to}\t{p.text}\t{json.dumps(p.questions, ensure_ascii=False)}\n".encode()


class IndexWriter:
    """Writes a build into its scratch folder one part at a time (a large build can free each
    part before making the next), then ``commit`` switches to it atomically. Leaving the
    ``with`` block without committing removes the scratch folder."""

    def __init__(self, home: Path):
        self.home = home
        self.builds = home / "indexes"
        self.builds.mkdir(parents=True, exist_ok=True)
        remove_abandoned_builds(self.builds)
        self.build_id, self.scratch = _new_scratch(self.builds)
        self._manifest: dict = {}
        self._passages_out = None
        self._digest = hashlib.sha256()
        self._passages = 0

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self._close_passages()
        if self.scratch.exists():
            shutil.rmtree(self.scratch, ignore_errors=True)

    def write_passages(self, passages: Iterable[Passage]) -> None:
        """Passages in index order, from a list or streamed from a generator."""
        self.add_passages(passages)
        self._close_passages()

    def add_passages(self, passages: Iterable[Passage]) -> None:
        """Append passages after those already written (a build adds them a chunk at a time)."""
        if self._passages_out is None:
            self._passages_out = open(self.scratch / "passages.jsonl", "w", encoding="utf-8")
        for p in passages:
            self._digest.update(_hash_line(p))
            self._passages_out.write(json.dumps(dataclasses.asdict(p), ensure_ascii=False) + "\n")
            self._passages += 1
        self._manifest.update(passages=self._passages, corpus_hash=self._digest.hexdigest()[:16])

    def _close_passages(self) -> None:
        if self._passages_out is not None:
            self._passages_out.close()

    def write_bm25(self, bm25: BM25Index) -> None:
        bm25.save(self.scratch)

    def write_dense(self, dense: DenseIndex) -> None:
        dense.save(self.scratch / "dense.faiss")
        self._manifest.update(dimension=dense.dimension, dense_index=dense.kind)

    def write_answer_types(self, bits: np.ndarray, names: list[str]) -> None:
        np.save(self.scratch / "answer_types.npy", bits)
        self._manifest.update(answer_types=names)

    def write_question_index(self, questions: DenseIndex) -> None:
        questions.save(self.scratch / "questions.faiss")

    def write_scope(self, scope: ScopeModel) -> None:
        np.save(self.scratch / "scope.npy", scope.weights)

    def write_laws(self, laws: LawModel) -> None:
        laws.save(self.scratch / "laws.npz")

    def write_homophones(self, homophones: dict) -> None:
        (self.scratch / "homophones.json").write_text(json.dumps(homophones, ensure_ascii=False), "utf-8")

    def commit(self, embedder: Embedder, dictionary_fingerprint: str) -> Path:
        self._close_passages()
        manifest = {
            "format_version": FORMAT_VERSION,
            "build_id": self.build_id,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "embedder": _portable_name(embedder.name, self.home),
            "dimension": self._manifest["dimension"],
            "normalised": True,
            "dense_index": self._manifest["dense_index"],
            "passages": self._manifest["passages"],
            "corpus_hash": self._manifest["corpus_hash"],
            "dictionary_hash": dictionary_fingerprint,
            "answer_types": self._manifest["answer_types"],
        }
        (self.scratch / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), "utf-8")
        _fsync_folder(self.scratch)
        final = self.builds / self.build_id
        os.replace(self.scratch, final)
        pointer = self.home / f"{CURRENT_POINTER}.tmp"
        pointer.write_text(self.build_id, "utf-8")
        os.replace(pointer, self.home / CURRENT_POINTER)
        _remove_old_builds(self.builds, keep=self.build_id)
        return final


def _portable_name(embedder_name: str, home: Path) -> str:
    """A model kept inside the home is recorded relative to it, so a home can move (backups)."""
    try:
        return Path(embedder_name).resolve().relative_to(home.resolve()).as_posix()
    except ValueError:
        return embedder_name


def current_build_id(home: Path) -> str | None:
    """The build ``<home>/CURRENT`` names (None before the first). A service reads it before every
    question, so with plain system calls: pathlib's text layer costs 0.1 ms a question more."""
    try:
        pointer = os.open(home / CURRENT_POINTER, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return os.read(pointer, 4096).decode("utf-8").strip() or None
    finally:
        os.close(pointer)


def load_index(home: Path, embedder_name: str | None = None, dimension: int | None = None) -> BuiltIndex:
    build_id = current_build_id(home)
    if build_id is None:
        raise IndexNotBuilt()
    folder = home / "indexes" / build_id

    def read(part: str, reader: Callable[[], object]):
        try:
            return reader()
        except (FileNotFoundError, ValueError, KeyError, TypeError, EOFError, RuntimeError, zipfile.BadZipFile):  # RuntimeError: faiss's
            raise IndexMismatch(f'the index at {folder} is damaged or incomplete ({part}): run "qa build" again') from None
        except OSError as exc:
            raise IndexMismatch(f"cannot read the index at {folder} ({part}): {exc.strerror or exc}") from None

    def optional(name: str, reader: Callable[[Path], object]):
        return read(name, lambda: reader(folder / name)) if (folder / name).exists() else None

    manifest = read("manifest.json", lambda: json.loads((folder / "manifest.json").read_text("utf-8")))
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
    return BuiltIndex(folder, manifest, read("passages.jsonl", lambda: _read_passages(folder / "passages.jsonl", manifest["passages"])),
                      read("the BM25 files", lambda: BM25Index.load(folder)),
                      read("dense.faiss", lambda: DenseIndex.load(folder / "dense.faiss")),
                      read("homophones.json", lambda: json.loads((folder / "homophones.json").read_text("utf-8"))),
                      read("answer_types.npy", lambda: np.load(folder / "answer_types.npy")),
                      optional("questions.faiss", DenseIndex.load),
                      optional("scope.npy", lambda path: ScopeModel(np.load(path))),
                      optional("laws.npz", LawModel.load))


def _read_passages(path: Path, count: int) -> list[Passage]:
    shared: dict = {}
    with open(path, encoding="utf-8") as lines:
        passages = [_shared_fields(_passage_from_json(line), shared) for line in lines]
    if len(passages) != count:
        raise ValueError(f"{len(passages)} passages where the manifest has {count}")
    return passages


def _passage_from_json(line: str) -> Passage:
    row = json.loads(line)
    row["questions"] = tuple(row.get("questions", ()))
    return Passage(**row)


def _shared_fields(passage: Passage, shared: dict) -> Passage:
    """One string object for each law, title, chapter and date however many passages repeat it
    (at a million passages, copies would take about half a gigabyte)."""
    for name in ("doc", "article", "title", "chapter", "effective_from", "effective_to"):
        value = getattr(passage, name)
        setattr(passage, name, shared.setdefault(value, value))
    return passage


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
