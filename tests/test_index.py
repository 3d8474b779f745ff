"""The built index on disk: written part by part, atomically; abandoned scratch folders of killed builds are removed by the next build."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from qa_engine.dense import DenseIndex
from qa_engine.errors import IndexMismatch
from qa_engine.index import FORMAT_VERSION, IndexWriter, current_build_id, load_index


def test_next_build_removes_folders_of_killed_builds_but_not_running_ones(service):
    builds = service.home / "indexes"
    dead = builds / "20200101T000000-4194999.tmp"  # above the default pid_max: no such process
    (dead / "half").mkdir(parents=True)
    running = builds / f"20200101T000000-{os.getpid()}.tmp"
    running.mkdir()
    unnamed = builds / "leftover.tmp"
    unnamed.mkdir()
    before = current_build_id(service.home)
    service.build()
    assert current_build_id(service.home) != before
    assert not dead.exists() and not unnamed.exists()
    assert running.exists()


def test_a_build_written_part_by_part_reads_back_like_one_written_at_once(service):
    built = load_index(service.home)
    before = built.build_id
    vectors = service.retriever().embedder.encode([p.text for p in built.passages])
    with IndexWriter(service.home) as writer:
        writer.write_passages(p for p in built.passages)  # a generator: streamed once
        writer.write_bm25(built.bm25)
        dense = DenseIndex.create("flat", vectors.shape[1], len(vectors))
        for first in range(0, len(vectors), 3):
            dense.add(vectors[first : first + 3])
        writer.write_dense(dense)
        writer.write_homophones(built.homophones)
        writer.write_answer_types(built.answer_types, built.manifest["answer_types"])
        writer.commit(service.retriever().embedder, built.manifest["dictionary_hash"])
    again = load_index(service.home)
    assert again.build_id != before
    assert np.array_equal(again.answer_types, built.answer_types)
    assert again.questions is None and built.questions is None  # the small laws have no curated questions
    for key in ("passages", "corpus_hash", "dimension", "dense_index", "embedder", "dictionary_hash", "answer_types"):
        assert again.manifest[key] == built.manifest[key], key
    assert [p.id for p in again.passages] == [p.id for p in built.passages]
    scores, ids = again.dense.search(vectors[4], 3)
    assert ids[0] == 4 and np.isclose(scores[0], 1.0, atol=1e-5)


def test_a_build_that_fails_midway_leaves_the_current_index_and_no_scratch(service):
    built = load_index(service.home)
    with pytest.raises(RuntimeError):
        with IndexWriter(service.home) as writer:
            writer.write_passages(built.passages)
            raise RuntimeError("killed while writing the posting lists")
    assert current_build_id(service.home) == built.build_id
    assert not list((service.home / "indexes").glob("*.tmp"))


def test_dense_index_kinds_built_in_chunks():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for kind in ("flat", "ivf", "hnsw"):
        dense = DenseIndex.create(kind, 16, len(vectors), vectors)
        for first in range(0, len(vectors), 500):
            dense.add(vectors[first : first + 500])
        assert dense.kind == kind and dense.dimension == 16 and dense.index.ntotal == 2000
        _, ids = dense.search(vectors[7], 1)
        assert ids[0] == 7


def test_an_index_of_an_older_format_is_refused_with_what_to_do(service):
    older = FORMAT_VERSION - 1
    manifest = service.home / "indexes" / current_build_id(service.home) / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text("utf-8")), "format_version": older}), "utf-8")
    with pytest.raises(IndexMismatch, match=f'has format {older}, this version reads {FORMAT_VERSION}: run "qa build" again'):
        load_index(service.home)


def test_the_question_graph_is_the_same_in_every_build():
    from qa_engine.dense import DenseIndex

    vectors = np.random.default_rng(3).normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    first, second = DenseIndex.graph_of(vectors), DenseIndex.graph_of(vectors)
    for query in vectors[:50]:
        assert np.array_equal(first.search(query, 20)[1], second.search(query, 20)[1])


def test_a_damaged_or_missing_index_file_is_an_error_naming_it_with_what_to_do(service):
    folder = service.home / "indexes" / current_build_id(service.home)
    files = sorted(path for path in folder.iterdir() if path.is_file())
    assert {"manifest.json", "passages.jsonl", "dense.faiss", "bm25_postings.npz", "answer_types.npy"} <= {f.name for f in files}
    optional = {"questions.faiss", "scope.npy", "laws.npz"}  # not every build has them
    for path in files:
        whole = path.read_bytes()
        damaged = rf"is damaged or incomplete \({'the BM25 files' if path.name.startswith('bm25') else path.name}\): run \"qa build\" again"
        path.write_bytes(whole[: len(whole) // 2])
        with pytest.raises(IndexMismatch, match=damaged):
            load_index(service.home)
        if path.name not in optional:
            path.unlink()
            with pytest.raises(IndexMismatch, match=damaged):
                load_index(service.home)
        path.write_bytes(whole)
    lines = (folder / "passages.jsonl").read_text("utf-8").splitlines(keepends=True)
    (folder / "passages.jsonl").write_text("".join(lines[:-1]), "utf-8")  # cut at a line's end: still a damaged index
    with pytest.raises(IndexMismatch, match=r"damaged or incomplete \(passages.jsonl\)"):
        load_index(service.home)


def test_a_new_build_that_cannot_be_read_leaves_the_loaded_one_answering(service, make_service, monkeypatch, caplog):
    import qa_engine.service as service_module

    question, day = "偶然所得的税率是多少", "2026-06-01"
    server = make_service(home=service.home)  # a running server: it answers from the build it loaded
    before = server.ask(question, as_of=day, record=False)
    loads = []
    monkeypatch.setattr(service_module, "load_index", lambda home: loads.append(home) or load_index(home))

    def new_build(damaged: bool) -> tuple[str, bytes]:
        service.build()
        build = current_build_id(service.home)
        faiss_file = service.home / "indexes" / build / "dense.faiss"
        whole = faiss_file.read_bytes()
        if damaged:
            faiss_file.write_bytes(whole[:10])
        return build, whole

    monkeypatch.setattr(service_module, "RELOAD_RETRY_S", 3600.0)
    first = server._loaded_build
    new_build(damaged=True)
    with caplog.at_level("WARNING"):
        assert server.ask(question, as_of=day, record=False) == before
    assert f"still answering from build {first}: the index at" in caplog.text and "damaged or incomplete (dense.faiss)" in caplog.text
    assert server.ask(question, as_of=day, record=False) == before and len(loads) == 1, "not tried again on every ask"

    good, _ = new_build(damaged=False)
    assert server.ask(question, as_of=day, record=False) == before and server._loaded_build == good, "a newer build: at once"

    monkeypatch.setattr(service_module, "RELOAD_RETRY_S", 0.0)
    late, whole = new_build(damaged=True)
    server.ask(question, as_of=day, record=False)
    assert server._loaded_build == good
    (service.home / "indexes" / late / "dense.faiss").write_bytes(whole)  # the rest of it arrives
    assert server.ask(question, as_of=day, record=False) == before and server._loaded_build == late
    assert len(loads) == 4
