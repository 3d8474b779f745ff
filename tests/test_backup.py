"""`qa backup` and `qa restore`: a restored knowledge base answers exactly as the original did."""

from __future__ import annotations

import json
import threading

import pytest

from qa_engine.backup import BackupError
from qa_engine.errors import DatabaseDamaged, InvalidInput

from conftest import FakeEmbedder

QUESTIONS = ["中奖了交多少个税", "偶然所得的税率是多少", "虚开发票怎么处罚", "居民个人是谁", "外星人交什么税"]
ANSWER = {"question": "中奖了交多少个税", "answer": "偶然所得按百分之二十缴纳。",
          "citations": [{"doc": "示例个人所得税法", "article": "第三条"}]}
NEW_LAW = "# 中华人民共和国示例印花税法\n2021年6月10日 通过\n<!-- INFO END -->\n第一条 书立应税凭证的单位和个人，为印花税的纳税人。\n"


def answers_to(svc) -> list[dict]:
    return [svc.ask(q, as_of="2026-06-01", record=False) for q in QUESTIONS]


@pytest.fixture
def curated(service):
    service.approve_answer(service.add_answer(ANSWER, by="王芳")["id"], by="王芳")
    service.ask("偶然所得的税率是多少", record=True)
    return service


def test_restore_into_a_new_home_answers_identically(curated, make_service, tmp_path):
    before = answers_to(curated)
    result = curated.backup(tmp_path / "backup")
    assert result["database"]["answers"] == 1 and result["index"]["passages"] == 10
    assert not (tmp_path / "backup.partial").exists()
    other = make_service(home=tmp_path / "elsewhere")
    restored = other.restore(tmp_path / "backup")
    assert restored["index"] == result["index"]["build_id"] and restored["replaced"] is None
    assert answers_to(other) == before
    assert other.stats() == curated.stats()
    answer_id = curated.list_answers()[0]["id"]
    assert other.answer_history(answer_id) == curated.answer_history(answer_id)


@pytest.mark.parametrize("damage", ["garbage", "cut short"])
def test_a_damaged_database_is_one_clear_error_and_its_advice_brings_the_answers_back(curated, make_service, tmp_path, damage):
    before = answers_to(curated)
    curated.backup(tmp_path / "backup")
    curated.store.close()
    database = tmp_path / "home" / "knowledge.db"
    whole = database.read_bytes()
    database.write_bytes(b"not a database at all" if damage == "garbage" else whole[: len(whole) // 3])
    with pytest.raises(DatabaseDamaged, match=r"knowledge.db is damaged \(.+\): move it aside, .*\"qa restore BACKUP\""):
        make_service()
    for path in tmp_path.glob("home/knowledge.db*"):  # as the message says: the database and its -wal aside
        path.rename(path.with_name(path.name + ".damaged"))
    again = make_service()
    again.restore(tmp_path / "backup")
    assert answers_to(again) == before


def test_a_backup_that_cannot_be_written_says_why_and_leaves_nothing(curated, tmp_path, monkeypatch):
    import shutil

    def full_disk(source, target, **options):
        raise shutil.Error([(str(source), str(target), "[Errno 28] No space left on device: 'a' -> 'b'")])

    monkeypatch.setattr(shutil, "copytree", full_disk)
    with pytest.raises(BackupError, match=r"cannot write the backup to .*backup \(\[Errno 28\] No space left on device\); nothing was left there"):
        curated.backup(tmp_path / "backup")
    assert not (tmp_path / "backup").exists() and not (tmp_path / "backup.partial").exists()


def test_a_restore_whose_index_cannot_be_written_says_so_and_leaves_no_half_copy(curated, make_service, tmp_path, monkeypatch):
    import shutil

    curated.backup(tmp_path / "backup")
    copy = shutil.copytree

    def copy_until_the_disk_is_full(source, target, **options):
        copy(source, target, **options)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", copy_until_the_disk_is_full)
    other = make_service(home=tmp_path / "elsewhere")
    with pytest.raises(BackupError, match=r"the knowledge base was restored but not its index \(No space left on device\): "
                                          r"free some space and run \"qa build\""):
        other.restore(tmp_path / "backup")
    assert other.stats()["documents"] == curated.stats()["documents"]
    assert not list((tmp_path / "elsewhere").rglob("*.restoring"))


def test_restore_over_a_changed_knowledge_base_brings_back_the_old_answers(curated, tmp_path):
    before = answers_to(curated)
    curated.backup(tmp_path / "backup")
    (tmp_path / "laws" / "示例印花税法(2021-06-10).md").write_text(NEW_LAW, "utf-8")
    curated.ingest([tmp_path / "laws"])
    answer_id = curated.list_answers()[0]["id"]
    curated.edit_answer(answer_id, {"answer": "改过的答复。"}, by="李明")
    curated.build()
    assert answers_to(curated) != before
    with pytest.raises(InvalidInput, match="already holds a knowledge base .*pass --force"):
        curated.restore(tmp_path / "backup")
    result = curated.restore(tmp_path / "backup", force=True)
    assert answers_to(curated) == before  # the same service object: a running server picks it up
    assert curated.answer_detail(answer_id)["answer"] == ANSWER["answer"]
    assert curated.stats()["documents"] == 3
    kept = json.loads(json.dumps(result))["replaced"]
    assert kept and (tmp_path / "home" / "replaced").is_dir()


def test_a_damaged_backup_is_refused_and_changes_nothing(curated, make_service, tmp_path):
    curated.backup(tmp_path / "backup")
    passages = next((tmp_path / "backup" / "indexes").iterdir()) / "passages.jsonl"
    passages.write_text(passages.read_text("utf-8").replace("百分之二十", "百分之十"), "utf-8")
    other = make_service(home=tmp_path / "elsewhere")
    with pytest.raises(BackupError, match=r"passages.jsonl does not match its checksum in backup.json: the backup is damaged"):
        other.restore(tmp_path / "backup")
    assert other.stats()["documents"] == 0 and other.stats()["index"] is None
    with pytest.raises(BackupError, match="is not a backup: it has no backup.json"):
        other.restore(tmp_path / "laws")


def test_backup_needs_a_new_folder(curated, tmp_path):
    with pytest.raises(InvalidInput, match="already exists and is not empty"):
        curated.backup(tmp_path / "laws")


def test_backup_while_others_write_is_consistent(curated, make_service, tmp_path):
    writer = make_service(home=curated.home)
    stop = threading.Event()

    def write():
        while not stop.is_set():
            writer.record_feedback("x", True)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        manifests = [curated.backup(tmp_path / f"backup{n}") for n in range(3)]
    finally:
        stop.set()
        thread.join()
    assert all(m["database"]["documents"] == 3 for m in manifests)  # integrity checked on each copy


def test_the_trained_model_travels_with_the_index(make_service, small_laws, tmp_path):
    class HomeModel(FakeEmbedder):
        """Stands in for the corpus-trained model, which lives in <home>/models/."""

    home = tmp_path / "home"
    (home / "models" / "corpus-model").mkdir(parents=True)
    (home / "models" / "corpus-model" / "weights.bin").write_bytes(b"\x01\x02")
    HomeModel.name = str((home / "models" / "corpus-model").resolve())
    svc = make_service(home=home)
    svc._embedder = HomeModel()
    svc.ingest([small_laws])
    svc.build()
    manifest = svc.backup(tmp_path / "backup")
    assert manifest["model"] == "corpus-model" and "models/corpus-model/weights.bin" in manifest["files"]
    other = make_service(home=tmp_path / "elsewhere")
    other.restore(tmp_path / "backup")
    build = other.stats()["index"]
    restored = json.loads((tmp_path / "elsewhere" / "indexes" / build / "manifest.json").read_text("utf-8"))
    assert restored["embedder"] == "models/corpus-model"  # relative to the home it is restored into
    assert (tmp_path / "elsewhere" / "models" / "corpus-model" / "weights.bin").read_bytes() == b"\x01\x02"


def test_cli_backup_and_restore(run_cli, curated, tmp_path):
    result = run_cli("backup", tmp_path / "b")
    assert result.exit_code == 0
    build = curated.stats()["index"]
    assert result.output == f"backed up 3 documents, 1 answers and index {build} to {tmp_path / 'b'}\n"
    refused = run_cli("restore", tmp_path / "b")
    assert refused.exit_code == 1 and refused.output.startswith("Error: ") and "pass --force" in refused.output
    restored = run_cli("restore", tmp_path / "b", "--force")
    assert restored.exit_code == 0
    assert restored.output.splitlines()[0] == f"restored 3 documents, 1 answers and index {build} from {tmp_path / 'b'}"


def test_a_backup_made_by_an_older_version_is_restored_in_the_schema_this_one_reads(curated, make_service, tmp_path):
    import hashlib
    import sqlite3

    before = answers_to(curated)
    curated.backup(tmp_path / "backup")
    database = tmp_path / "backup" / "knowledge.db"
    with sqlite3.connect(database) as old:  # as a version before the answers' revision number wrote it
        old.execute("DROP TABLE answers_revision")
        old.execute("PRAGMA user_version = 5")
    old.close()
    manifest = json.loads((tmp_path / "backup" / "backup.json").read_text("utf-8"))
    manifest["files"]["knowledge.db"] = hashlib.sha256(database.read_bytes()).hexdigest()
    (tmp_path / "backup" / "backup.json").write_text(json.dumps(manifest), "utf-8")
    other = make_service(home=tmp_path / "elsewhere")
    other.restore(tmp_path / "backup")
    assert other.store.db.execute("PRAGMA user_version").fetchone()[0] == 6
    assert answers_to(other) == before
    other.edit_answer(other.list_answers()[0]["id"], {"answer": "改过的答复。"}, by="李明")
    assert "改过的答复。" in json.dumps(answers_to(other), ensure_ascii=False), "an edit after the restore is answered at once"
