"""Shared fixtures: a small knowledge base on a temporary home, with a deterministic embedder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from qa_engine.config import Settings
from qa_engine.service import QAService

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SHARED_LAWS = SHARED / "corpus" / "laws"
DEV_SET = SHARED / "eval" / "dev.jsonl"


def require_shared() -> Path:
    """The shared law corpus; skipped where absent (a fresh clone), a failure in CI."""
    if not SHARED_LAWS.is_dir():
        if os.environ.get("QA_REQUIRE_SHARED") == "1":
            pytest.fail(f"QA_REQUIRE_SHARED=1 but {SHARED_LAWS} is missing")
        pytest.skip(f"needs the shared law corpus at {SHARED_LAWS} (not part of a fresh clone)")
    return SHARED_LAWS


class FakeEmbedder:
    """Deterministic character-bigram hashing embedder, for tests where the model is not under test."""

    name = "fake-bigram-64"
    dimension = 64

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for a, b in zip(text, text[1:]):
                bucket = int(hashlib.md5((a + b).encode()).hexdigest()[:8], 16) % self.dimension
                vectors[row, bucket] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


SMALL_LAWS = {
    "示例个人所得税法(2018-08-31).md": """# 中华人民共和国示例个人所得税法

2018年8月31日 第十三届全国人民代表大会常务委员会第五次会议修正

<!-- INFO END -->

## 第一章 总则

第一条 在中国境内有住所的个人，为居民个人，应当依照本法规定缴纳个人所得税。

第二条 下列各项个人所得，应当缴纳个人所得税：工资、薪金所得；劳务报酬所得；稿酬所得；偶然所得。

## 第二章 税率

第三条 综合所得，适用百分之三至百分之四十五的超额累进税率。偶然所得，适用比例税率，税率为百分之二十。

第四条 本法自2019年1月1日起施行。
""",
    "示例发票暂行条例(2011-01-08).md": """# 中华人民共和国示例发票暂行条例

2011年1月8日 国务院修订

<!-- INFO END -->

第一条 销售商品、提供服务，收款方应当向付款方开具发票。

第二条 任何单位和个人不得虚开发票，不得非法出售发票。

第三条 本条例自1993年1月1日起施行。
""",
    "示例发票法(2024-12-25).md": """# 中华人民共和国示例发票法

2024年12月25日 第十四届全国人民代表大会常务委员会通过

<!-- INFO END -->

第一条 销售商品、提供服务以及从事其他经营活动，收款方应当向付款方开具发票；特殊情况下，由付款方向收款方开具发票。

第二条 任何单位和个人不得有虚开发票、非法出售发票等行为，违者由税务机关处以罚款。

第三条 本法自2026年1月1日起施行。《中华人民共和国示例发票暂行条例》同时废止。
""",
}


def write_small_laws(folder: Path) -> Path:
    """The three small laws as files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SMALL_LAWS.items():
        (folder / name).write_text(text, "utf-8")
    return folder


def build_small_service(root: Path, *extra_sources: Path) -> QAService:
    """A service on ``root/home`` with the small laws (and ``extra_sources``) ingested and built."""
    svc = QAService(Settings.from_env(environ={}, home=root / "home"), embedder=FakeEmbedder())
    report = svc.ingest([write_small_laws(root / "laws"), *extra_sources])
    assert report.errors == []
    svc.build()
    return svc


@pytest.fixture
def small_laws(tmp_path) -> Path:
    return write_small_laws(tmp_path / "laws")


@pytest.fixture
def make_service(tmp_path):
    """Builds services on temporary homes; closes their databases afterwards."""
    made = []

    def make(home: Path | None = None, **settings) -> QAService:
        svc = QAService(Settings.from_env(environ={}, home=home or tmp_path / "home", **settings), embedder=FakeEmbedder())
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.store.close()


@pytest.fixture
def service(make_service, small_laws) -> QAService:
    """A service over the three small laws, built and ready to answer."""
    svc = make_service()
    report = svc.ingest([small_laws])
    assert report.errors == []
    svc.build()
    return svc




@pytest.fixture(scope="module")
def module_service(tmp_path_factory) -> QAService:
    """Like ``service`` but shared by one test module: for tests that only read, or that compare
    the knowledge base before and after what they do (building per test costs seconds)."""
    svc = build_small_service(tmp_path_factory.mktemp("module-kb"))
    yield svc
    svc.store.close()


@pytest.fixture
def run_cli(service, monkeypatch):
    """Runs `qa ...` through click against the ``service`` fixture; returns the click Result.

    ``run_cli("queue", "list", "--json")``; pass ``env={"QA_USER": ...}`` for an identity."""
    from click.testing import CliRunner

    import qa_engine.cli

    monkeypatch.setattr(qa_engine.cli, "service", lambda ctx: service)
    runner = CliRunner()

    def run(*args, env: dict | None = None):
        return runner.invoke(qa_engine.cli.cli, [str(a) for a in args], env={"QA_USER": "", **(env or {})},
                             catch_exceptions=False)

    return run


@pytest.fixture
def static_model(tmp_path):
    """A tiny static-embedding model saved the way sentence-transformers saves one (made
    without torch): (folder, tokenizer, weights)."""
    import json

    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["[PAD]", "[UNK]"], show_progress=False)
    tokenizer.train_from_iterator(["个人所得税 工资 薪金", "增值税 发票 开具", "tax invoice", *SMALL_LAWS.values()], trainer=trainer)
    folder = tmp_path / "static-model"
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    weights = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 8)).astype(np.float32)
    save_file({"embedding.weight": weights}, str(folder / "model.safetensors"))
    module = "sentence_transformers.sentence_transformer.modules.static_embedding.StaticEmbedding"
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": module}]))
    return folder, tokenizer, weights


@pytest.fixture
def fake_corpus_training(monkeypatch, static_model):
    """Training the corpus model is replaced by copying a tiny static model. Returns the
    replacement, which records the pairs of each training in ``.seen``."""
    import shutil

    import qa_engine.service

    def train(passages, pairs, output_dir, **options):
        train.seen.append(list(pairs))
        shutil.copytree(static_model[0], output_dir)

    train.seen = []
    monkeypatch.setattr(qa_engine.service, "train_corpus_model", train)
    return train




# An approved answer whose text carries HTML: every front end must show it as text and run nothing.
XSS_ANSWER = {
    "question": "偶然所得怎么交税",
    "answer": '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">偶然所得按百分之二十的比例税率缴纳个人所得税。',
    "citations": [{"doc": "示例个人所得税法", "article": "第三条"}],
}


@pytest.fixture(scope="session")
def answered_home(tmp_path_factory) -> Path:
    """A knowledge base home with the small laws and ``XSS_ANSWER``, built once per test session."""
    import json

    folder = tmp_path_factory.mktemp("answered")
    answers = folder / "answers.jsonl"
    answers.write_text(json.dumps(XSS_ANSWER, ensure_ascii=False) + "\n", "utf-8")
    build_small_service(folder, answers).store.close()
    return folder / "home"


@pytest.fixture
def answered_service(make_service, answered_home, tmp_path) -> QAService:
    """A fresh copy of ``answered_home``: the small laws plus one approved answer, built and ready."""
    import shutil

    home = tmp_path / "answered-home"
    shutil.copytree(answered_home, home)
    return make_service(home)


@pytest.fixture
def app(answered_service):
    """The web app over ``answered_service``, with limits high enough not to get in a test's way."""
    from qa_engine.webapp import create_app

    return create_app(
        {"QA_RATE_LIMIT": "1000 per minute", "QA_CONSOLE_RATE_LIMIT": "1000 per minute",
         "QA_CORS_ORIGINS": "https://etax.example.gov.cn"},
        service=answered_service,
    )


@pytest.fixture
def agent_key(answered_service) -> str:
    """An API key with role agent in ``answered_service`` (for the agent console's endpoints)."""
    return answered_service.add_key("desk-01", "agent", "测试管理员")["key"]


@pytest.fixture
def client(app, agent_key):
    """A test client that sends ``agent_key`` with every request, as the console does (the public
    endpoints ignore it); ``public_client`` sends none."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {agent_key}"
    return client


@pytest.fixture
def public_client(app):
    """A test client with no API key, like the widget on a taxpayer's browser."""
    return app.test_client()
