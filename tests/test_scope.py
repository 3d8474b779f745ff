import json
import shutil

import numpy as np

from qa_engine.config import Settings
from qa_engine.index import load_index
from qa_engine.scope import ScopeModel, gram_buckets, gram_matrix

IN_SCOPE = ["工资要交个税吗", "年终奖怎么交个人所得税", "专票丢了怎么办", "小规模增值税税率是多少", "卖房子要交哪些税",
            "个体户怎么交税", "公司发的过节费交不交个税", "房租收入要交税吗", "买车要交车购税吗", "增值税多久申报一次"]
OUT_OF_SCOPE = ["医保卡的钱能取出来吗", "身份证丢了怎么补办", "电子税务局登录密码忘了", "开票软件打不开怎么办",
                "办税大厅周末上班吗", "公积金怎么提取", "驾照扣分怎么处理", "个税APP人脸识别不了", "热线几点下班", "今天天气怎么样"]


def test_grams_are_hashed_the_same_in_every_process_and_for_full_width_text():
    assert np.array_equal(gram_buckets("个税ＡＰＰ"), gram_buckets("个税APP"))
    assert len(gram_buckets("个税")) == 3  # 个, 税, 个税
    rows = gram_matrix(["个税", "增值税税率"])
    assert np.allclose(np.sqrt(rows.multiply(rows).sum(axis=1)), 1.0)


def test_the_scope_model_tells_tax_questions_from_others_it_has_not_seen():
    model = ScopeModel.train(IN_SCOPE, OUT_OF_SCOPE)
    assert model.in_scope(gram_buckets("奖金要交个税吗")) > 0.5
    assert model.in_scope(gram_buckets("社保卡丢了怎么补办")) < 0.5


def test_a_build_with_out_of_scope_examples_lowers_the_confidence_of_such_questions(make_service, small_laws, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(Settings().corpus_dir / "dictionary", corpus / "dictionary")
    svc = make_service(corpus_dir=corpus)
    assert svc.ingest([small_laws]).errors == []
    svc.build()
    assert load_index(svc.home).scope is None
    assert svc.explain("身份证丢了怎么补办")["confidence_features"]["in_scope"] == 1.0

    (corpus / "dictionary" / "out_of_scope.txt").write_text("\n".join(OUT_OF_SCOPE) + "\n", "utf-8")
    (corpus / "article_questions.jsonl").write_text(json.dumps(
        {"doc": "示例个人所得税法(2018-08-31)", "article": "第二条", "questions": IN_SCOPE}, ensure_ascii=False) + "\n", "utf-8")
    svc.build()
    assert load_index(svc.home).scope is not None
    assert svc.explain("身份证丢了怎么补办")["confidence_features"]["in_scope"] < 0.5
    assert svc.explain("劳务报酬要交个税吗")["confidence_features"]["in_scope"] > 0.5
