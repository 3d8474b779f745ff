"""Smoke test of bench/answers.py on the small fixture corpus: three homes, the held-out home
really lacks the alternative phrasings, and each one is asked and counted."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.answers as answers_bench  # noqa: E402
from qa_engine.config import Settings  # noqa: E402
from qa_engine.service import QAService  # noqa: E402

ANSWERS = [
    {"question": "中彩票的钱要交多少税", "alternatives": ["彩票中奖交税吗", "偶然所得税率多少"], "answer": "按偶然所得，税率百分之二十。",
     "citations": [{"doc": "示例个人所得税法", "article": "第三条"}]},
    {"question": "虚开发票怎么处罚", "alternatives": ["虚开发票会被罚款吗"], "answer": "由税务机关处以罚款。",
     "citations": [{"doc": "示例发票法", "article": "第二条"}]},
]
GOLD = [
    {"id": "g1", "question": "中奖的偶然所得个税税率是多少", "category": "policy",
     "expected": [{"doc": "示例个人所得税法", "article": "第三条"}], "as_of": "2026-11-27"},
    {"id": "g2", "question": "医保卡里的钱能取出来吗", "category": "out_of_scope", "expected": [], "as_of": "2026-11-27"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def test_three_homes_and_every_held_out_phrasing_asked(tmp_path, small_laws, fake_corpus_training, capsys):
    answers = write_jsonl(tmp_path / "answers.jsonl", ANSWERS)
    gold = write_jsonl(tmp_path / "gold.jsonl", GOLD)
    scratch = tmp_path / "scratch"

    code = answers_bench.main(["--laws", str(small_laws), "--answers", str(answers), "--gold", str(gold),
                               "--home", str(scratch), "--json"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    per_home = results["sets"]["gold"]
    assert set(per_home) == {answers_bench.LAWS_ONLY, answers_bench.WITH_ANSWERS}
    assert all(overall["n"] == 2 and overall["answerable"] == 1 for overall in per_home.values())
    held = results["held_out"]
    assert held["phrasings"] == 3
    assert 0 < held["right_first"] <= 3 and held["auto_answered_right"] <= min(held["auto_answered"], held["right_first"])

    def stored_phrasings(home: str) -> set[str]:
        service = QAService(Settings.from_env(environ={}, home=scratch / home))
        try:
            return {text for a in service.approved_answers() for text in [a.question, *a.alternatives]}
        finally:
            service.store.close()

    assert stored_phrasings("laws-only") == set()
    assert stored_phrasings("with-answers") == {"中彩票的钱要交多少税", "彩票中奖交税吗", "偶然所得税率多少", "虚开发票怎么处罚", "虚开发票会被罚款吗"}
    assert stored_phrasings("held-out") == {"中彩票的钱要交多少税", "虚开发票怎么处罚"}


def test_missing_inputs_are_clear_errors(tmp_path, small_laws, capsys):
    assert answers_bench.main(["--laws", str(tmp_path / "nowhere")]) == 2
    assert "Error: no law corpus at" in capsys.readouterr().err
    assert answers_bench.main(["--laws", str(small_laws), "--answers", str(tmp_path / "none.jsonl")]) == 2
    assert "Error: no such file" in capsys.readouterr().err
