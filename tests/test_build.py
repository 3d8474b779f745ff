"""The streamed build: the same index whatever the chunking and the number of workers, and a
failed, killed or interrupted build leaves the current index serving."""

from __future__ import annotations

import json
import os
import shutil
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import sparse

import qa_engine.build
import qa_engine.cli
import qa_engine.index
import qa_engine.service
from qa_engine.build import _DenseFiller, build_index, default_workers
from qa_engine.config import Settings
from qa_engine.errors import QAError
from qa_engine.index import current_build_id, load_index
from qa_engine.index import passage_text

from conftest import XSS_ANSWER, FakeEmbedder


def index_parts(folder):
    """Everything a built index answers from, to compare two builds."""
    postings = sparse.load_npz(folder / "bm25_postings.npz")
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    built = load_index(folder.parent.parent)
    return {
        "passages": (folder / "passages.jsonl").read_bytes(),
        "bm25": (folder / "bm25.json").read_bytes(),
        "idf": np.load(folder / "bm25_idf.npy").tobytes(),
        "postings": [postings.data.tobytes(), postings.indices.tobytes(), postings.indptr.tobytes()],
        "vectors": built.dense.index.reconstruct_n(0, built.dense.index.ntotal).tobytes(),
        "homophones": (folder / "homophones.json").read_bytes(),
        "answer_types": np.load(folder / "answer_types.npy").tobytes(),
        "manifest": {k: v for k, v in manifest.items() if k not in ("build_id", "built_at")},
    }


def current_folder(home):
    return home / "indexes" / current_build_id(home)


def build_with(service, workers, chunk, **options):
    report = build_index(service.home, service.iter_passages(), service.store.article_count(), service.analyzer(),
                         FakeEmbedder(), workers=workers, chunk=chunk, **options)
    assert report.folder == current_folder(service.home) and report.workers == workers
    return report


def test_one_and_two_workers_and_any_chunk_size_build_the_same_index(service):
    by_service = index_parts(current_folder(service.home))  # QAService.build: one process, one chunk
    chunks_seen = []
    report = build_with(service, workers=1, chunk=2, progress=lambda items, label: (chunks_seen.append(len(items)), items)[1])
    assert index_parts(report.folder) == by_service
    assert chunks_seen == [5] and report.passages == 10  # 10 articles, 2 a chunk
    report = build_with(service, workers=2, chunk=3)
    assert index_parts(report.folder) == by_service
    assert report.cpu_seconds["tokenise"] > 0 and set(report.seconds) == {"tokenise_embed", "dense_write", "bm25",
                                                                          "homophones_commit"}


def test_each_chunks_vectors_are_shown_in_order(service):
    seen = []
    build_with(service, workers=2, chunk=4, on_vectors=seen.append)
    assert [len(v) for v in seen] == [4, 4, 2]
    expected = FakeEmbedder().encode([passage_text(p) for p in service.passages()])
    np.testing.assert_array_equal(np.concatenate(seen), expected)


def test_an_interrupted_build_leaves_the_current_index_and_no_workers(service):
    before = current_build_id(service.home)
    kept = index_parts(current_folder(service.home))
    parallelism = os.environ.get("TOKENIZERS_PARALLELISM")

    def interrupt(vectors):
        raise KeyboardInterrupt  # Ctrl-C while the chunks come back

    with pytest.raises(KeyboardInterrupt):
        build_with(service, workers=2, chunk=2, on_vectors=interrupt)
    assert current_build_id(service.home) == before
    assert index_parts(current_folder(service.home)) == kept
    assert not list((service.home / "indexes").glob("*.tmp"))
    assert not [child for child in os.listdir("/proc") if child.isdigit() and _parent(child) == os.getpid()]
    assert os.environ.get("TOKENIZERS_PARALLELISM") == parallelism  # the workers' setting is undone


class CrashingEmbedder(FakeEmbedder):
    """Dies like a worker the kernel killed for memory, in a worker process only."""

    def __init__(self, parent: int):
        self.parent = parent

    def encode(self, texts):
        if os.getpid() != self.parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(texts)


def test_a_killed_worker_fails_the_build_with_a_clear_error_and_keeps_the_current_index(service):
    before = current_build_id(service.home)
    with pytest.raises(QAError, match="a build worker process died .* the previous index is still in place"):
        build_index(service.home, service.iter_passages(), 10, service.analyzer(), CrashingEmbedder(os.getpid()),
                    workers=2, chunk=2)
    assert current_build_id(service.home) == before
    assert not list((service.home / "indexes").glob("*.tmp"))
    assert service.ask("偶然所得税率是多少", record=False)["answers"]


def test_a_full_disk_fails_the_build_with_one_clear_error_and_keeps_the_current_index(service, monkeypatch):
    before = current_build_id(service.home)

    def no_space(self, passages):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(qa_engine.index.IndexWriter, "add_passages", no_space)
    with pytest.raises(QAError, match=rf"cannot build in .*: No space left on device; build {before} still answers"):
        service.build()
    assert current_build_id(service.home) == before
    assert not list((service.home / "indexes").glob("*.tmp"))
    assert service.ask("偶然所得税率是多少", record=False)["answers"]


def _parent(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_ivf_learns_from_the_same_vectors_whatever_the_chunks():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    built = []
    for chunk in (250, 1100):
        filler = _DenseFiller("ivf", 16, len(vectors))
        for first in range(0, len(vectors), chunk):
            filler.add(vectors[first : first + chunk])
        dense = filler.finish()
        assert dense.kind == "ivf" and dense.index.ntotal == 3000
        built.append([dense.search(vectors[n], 5)[1].tolist() for n in range(0, 3000, 97)])
    assert built[0] == built[1]


def test_default_workers_one_for_small_corpora_one_per_core_for_large(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert default_workers(1183) == 1
    assert default_workers(qa_engine.build.PARALLEL_FROM - 1) == 1
    assert default_workers(qa_engine.build.PARALLEL_FROM) == 3  # 50,000 passages are 3 chunks
    assert default_workers(1_000_000) == 4


def test_service_build_with_workers(service):
    before = index_parts(current_folder(service.home))
    manifest = service.build(workers=2)
    assert manifest["build_id"] == current_build_id(service.home)
    assert index_parts(current_folder(service.home)) == before
    with pytest.raises(QAError, match="--workers must be at least 1"):
        service.build(workers=0)


def test_cli_build_takes_workers(service, monkeypatch):
    monkeypatch.setattr(qa_engine.cli, "service", lambda ctx: service)
    result = CliRunner().invoke(qa_engine.cli.cli, ["build", "--workers", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "built index" in result.output and "in 2 worker processes" in result.output
    result = CliRunner().invoke(qa_engine.cli.cli, ["build", "--workers", "0"])
    assert result.exit_code == 2 and "Invalid value for '--workers'" in result.output


def test_corpus_model_trains_on_an_even_sample_of_a_large_corpus(make_service, small_laws, tmp_path, monkeypatch,
                                                                  static_model):
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps(XSS_ANSWER, ensure_ascii=False) + "\n", "utf-8")
    svc = make_service()
    assert svc.ingest([small_laws, answers]).errors == []
    trained = []

    def train(passages, pairs, output_dir, **options):
        trained.append((passages, pairs))
        shutil.copytree(static_model[0], output_dir)

    monkeypatch.setattr(qa_engine.service, "train_corpus_model", train)
    analyzer, count = svc.analyzer(), svc.store.article_count()
    all_texts = [passage_text(p) for p in svc.passages()]
    svc._corpus_model(count, analyzer, print)
    assert trained[-1][0] == all_texts  # below the cap: every passage, as before the cap
    monkeypatch.setattr(qa_engine.service, "MODEL_TRAINING_PASSAGES", 4)
    svc._corpus_model(count, analyzer, print)
    texts, pairs = trained[-1]
    assert texts == [all_texts[n] for n in (0, 2, 5, 7)]  # 10 articles, 4 evenly spaced
    cited = next(text for text in all_texts if "第三条" in text and "示例个人所得税法" in text)
    assert (XSS_ANSWER["question"], f"{XSS_ANSWER['answer']} {cited}") in pairs  # the cited article, sampled or not


def test_a_model_whose_training_fails_leaves_no_half_model_behind(small_laws, tmp_path, monkeypatch, static_model):
    svc = qa_engine.service.QAService(Settings.from_env(environ={}, home=tmp_path / "home"))  # no embedder given: it trains one
    assert svc.ingest([small_laws]).errors == []

    def train_until_the_disk_is_full(passages, pairs, output_dir, **options):
        shutil.copytree(static_model[0], output_dir)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(qa_engine.service, "train_corpus_model", train_until_the_disk_is_full)
    with pytest.raises(QAError, match="cannot build in .*: No space left on device; no index was built"):
        svc.build()
    assert list((svc.home / "models").iterdir()) == []
    svc.store.close()


KILLED_BUILD = """
import os, sys, time
sys.path[:0] = [{tests!r}, {root!r}]
from conftest import FakeEmbedder
from qa_engine.build import build_index
from qa_engine.config import Settings
from qa_engine.service import QAService

class SlowEmbedder(FakeEmbedder):
    def encode(self, texts):
        time.sleep(60)

service = QAService(Settings.from_env(environ={{}}, home={home!r}), embedder=FakeEmbedder())
build_index(service.home, service.iter_passages(), 10, service.analyzer(), SlowEmbedder(), workers=2, chunk=2)
"""


def test_workers_end_when_the_build_process_is_killed(service):
    import subprocess
    import sys
    import time
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    script = KILLED_BUILD.format(tests=str(tests), root=str(tests.parent), home=str(service.home))
    build = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while len(workers := _children(build.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2
    finally:
        build.kill()
        build.wait()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in workers):
        assert time.monotonic() < deadline, "workers outlived the killed build"
        time.sleep(0.1)
    before = current_build_id(service.home)
    service.build()  # the killed build's scratch folder is cleared, the next build goes ahead
    assert current_build_id(service.home) != before and not list((service.home / "indexes").glob("*.tmp"))


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _children(parent: int) -> list[int]:
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == parent]


def test_the_index_records_what_kind_of_question_each_article_answers(service):
    index = load_index(service.home)
    analyzer = service.analyzer()
    names = index.manifest["answer_types"]
    assert names == [name for name, _, _ in analyzer.dictionary.question_types] and "amount" in names
    for passage, bits in zip(index.passages, index.answer_types.tolist()):
        assert {name for number, name in enumerate(names) if bits >> number & 1} == analyzer.answer_types(passage.text)
    assert any(index.answer_types)  # the fixture's articles include rates and deadlines
