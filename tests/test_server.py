"""`qa serve`: granian workers over a built home, switching to a rebuilt index without a restart."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_small_laws
from qa_engine.cli import cli

ROOT = Path(__file__).resolve().parent.parent

CAR_TAX_LAW = """# 中华人民共和国示例车船税法

2011年2月25日 第十一届全国人民代表大会常务委员会第十九次会议通过

<!-- INFO END -->

第一条 在中华人民共和国境内属于本法所附税目税额表规定的车辆、船舶的所有人或者管理人，为车船税的纳税人。

第二条 本法自2012年1月1日起施行。
"""


def test_serve_without_an_index_says_what_to_do(tmp_path):
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "empty"), "serve", "--port", "1"])
    assert result.exit_code == 1
    assert result.output == f'Error: no index has been built in {tmp_path / "empty"}: run "qa build" first\n'


def home_naming_a_build(tmp_path: Path) -> Path:
    """A home whose CURRENT names a build: enough for qa serve's checks before any worker starts."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "CURRENT").write_text("some-build\n")
    return home


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path):
    home = home_naming_a_build(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["--home", str(home), "serve", "--port", str(port)])
    assert result.exit_code == 1
    assert result.output == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_serve_over_a_damaged_database_says_so_in_one_line_before_starting_workers(tmp_path):
    home = home_naming_a_build(tmp_path)
    (home / "knowledge.db").write_bytes(b"not a database at all")
    result = CliRunner().invoke(cli, ["--home", str(home), "serve", "--port", str(free_port())])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: the knowledge base {home / 'knowledge.db'} is damaged (file is not a database)")
    assert result.output.count("\n") == 1


def test_serve_with_a_rate_limit_that_means_nothing_says_so_in_one_line_before_starting_workers(tmp_path, monkeypatch):
    home = home_naming_a_build(tmp_path)
    monkeypatch.setenv("QA_CONSOLE_RATE_LIMIT", "lots")
    result = CliRunner().invoke(cli, ["--home", str(home), "serve", "--port", str(free_port())])
    assert result.exit_code == 1
    assert result.output == "Error: QA_CONSOLE_RATE_LIMIT must be a rate such as '60 per minute' or '10/second; 1000/day', got 'lots'\n"


def test_serve_where_rate_limits_cannot_be_counted_says_so_in_one_line_before_starting_workers(tmp_path):
    home = home_naming_a_build(tmp_path)
    (home / "rate_limits.db").mkdir()  # not a file SQLite can open
    result = CliRunner().invoke(cli, ["--home", str(home), "serve", "--port", str(free_port())])
    assert result.exit_code == 1
    assert result.output == f"Error: cannot keep rate-limit counts in {home / 'rate_limits.db'}: unable to open database file\n"
    assert (home / "rate_limits.db").is_dir(), "what is there is not deleted"


def test_serve_help_has_an_example():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "qa serve --port 8000 --workers 2" in result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qa(home: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], env={**os.environ, "QA_HOME": str(home)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def call(url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_workers_pick_up_a_rebuild_without_failing_requests(tmp_path):
    laws, extra, home = tmp_path / "laws", tmp_path / "extra", tmp_path / "home"
    write_small_laws(laws)
    extra.mkdir()
    (extra / "示例车船税法(2011-02-25).md").write_text(CAR_TAX_LAW, "utf-8")
    qa(home, "ingest", str(laws))
    qa(home, "build")
    first = (home / "CURRENT").read_text().strip()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", "--port", str(port), "--workers", "2"],
                              env={**os.environ, "QA_HOME": str(home), "QA_RATE_LIMIT": "1000000 per hour"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if call(f"{base}/healthz", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.time() < deadline, "qa serve did not come up"
            time.sleep(0.5)

        outcomes: list[object] = []
        stop = threading.Event()

        def keep_asking():
            while not stop.is_set():
                try:
                    outcomes.append(call(f"{base}/v1/ask", {"question": "偶然所得的税率是多少"})[0])
                except OSError as exc:
                    outcomes.append(exc)

        askers = [threading.Thread(target=keep_asking) for _ in range(3)]
        for thread in askers:
            thread.start()
        qa(home, "ingest", str(extra))
        qa(home, "build")
        second = (home / "CURRENT").read_text().strip()
        assert second != first

        seen = []
        deadline = time.time() + 120
        while seen[-6:] != [second] * 6:  # several answers in a row, so from every worker
            assert time.time() < deadline, f"workers still answer from {seen[-6:]}"
            seen.append(call(f"{base}/healthz")[1]["index"])
        stop.set()
        for thread in askers:
            thread.join(timeout=60)

        assert len(outcomes) > 10
        assert set(outcomes) == {200}, [o for o in outcomes if o != 200][:5]
        status, data = call(f"{base}/v1/ask", {"question": "车船税的纳税人是谁"})
        assert status == 200 and data["answers"][0]["citations"][0]["doc"] == "示例车船税法(2011-02-25)"
        with sqlite3.connect(home / "rate_limits.db") as counters:
            counted = counters.execute("SELECT count FROM hits WHERE key LIKE '%api.ask%'").fetchall()
        assert counted == [(len(outcomes) + 1,)], "both workers count every ask in one place"
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
    assert "Traceback" not in output, output


def test_a_worker_warms_up_then_hides_what_it_loaded_from_the_garbage_collector(service):
    import gc
    from qa_engine.server import _warm_up
    from qa_engine.webapp import create_app

    app = create_app(service=service)
    service._retriever = None
    try:
        _warm_up(app)
        assert service._retriever is not None  # the index was loaded before any request
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_worker_scores_on_one_thread_of_numpy_s_blas(service, monkeypatch):
    import gc

    from threadpoolctl import threadpool_info, threadpool_limits

    from qa_engine import server

    monkeypatch.setattr("qa_engine.service.QAService", lambda settings: service)
    with threadpool_limits(limits=None):  # puts the test process's limits back afterwards
        try:
            server.worker_app()
            assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}
        finally:
            gc.unfreeze()


def test_a_worker_hands_back_half_its_lead_in_connections_over_the_emptiest_worker():
    from qa_engine.server import ConnectionBalancer

    assert ConnectionBalancer.excess({1: 19, 2: 13}, pid=1) == 3  # 12 connections against 6
    assert ConnectionBalancer.excess({1: 13, 2: 19}, pid=1) == 0
    assert ConnectionBalancer.excess({1: 16, 2: 15}, pid=1) == 0  # 8 against 7: as even as 15 can be
    assert ConnectionBalancer.excess({1: 20, 2: 12, 3: 16}, pid=3) == 2
    assert ConnectionBalancer.excess({1: 20}, pid=1) == 0  # one worker
    assert ConnectionBalancer.excess({2: 4, 3: 4}, pid=1) == 0  # not counted: a count that failed


def test_the_fuller_worker_closes_that_many_http_1_1_connections_until_it_counts_again(monkeypatch):
    from flask import Flask

    from qa_engine.server import ConnectionBalancer

    balancer = ConnectionBalancer(server_pid=1)
    counts = {os.getpid(): 19, 999_999: 13}
    monkeypatch.setattr(balancer, "socket_counts", lambda: counts)
    app = Flask(__name__)

    def connection_header(protocol: str = "HTTP/1.1") -> str | None:
        with app.test_request_context(environ_overrides={"SERVER_PROTOCOL": protocol}):
            return balancer.after_request(app.response_class("answer")).headers.get("Connection")

    assert [connection_header() for _ in range(5)] == ["close"] * 3 + [None] * 2
    balancer._next_count = 0.0  # time to count again: now even
    counts[999_999] = 19
    assert connection_header() is None
    counts[999_999] = 13
    balancer._next_count = 0.0
    assert connection_header("HTTP/2") is None  # HTTP/2 has no Connection header
    assert connection_header("HTTP/1.1") == "close"  # ... and the close is kept for the next HTTP/1.1 request


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="connections are counted from Linux's /proc")
def test_sockets_are_counted_for_each_worker_under_the_server():
    from qa_engine.server import ConnectionBalancer

    holds = "import os, socket, time; s = [socket.socket() for _ in range(int(os.environ['SOCKETS']))]; print(flush=True); time.sleep(60)"
    workers = [subprocess.Popen([sys.executable, "-c", holds], env={**os.environ, "SOCKETS": str(n)}, stdout=subprocess.PIPE)
               for n in (1, 4)]
    other = subprocess.Popen([sys.executable, "-c", holds + " "], env={**os.environ, "SOCKETS": "0"}, stdout=subprocess.PIPE)
    try:
        for child in workers + [other]:
            child.stdout.readline()  # its sockets are open
        command = Path(f"/proc/{workers[0].pid}/cmdline").read_bytes()
        counts = ConnectionBalancer(server_pid=os.getpid(), worker_command=command).socket_counts()
    finally:
        for child in workers + [other]:
            child.kill()
            child.communicate()
    assert other.pid not in counts  # another command: not a worker
    assert counts[workers[1].pid] - counts[workers[0].pid] == 3


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="connections are counted from Linux's /proc")
def test_workers_even_out_kept_alive_connections_and_every_request_is_answered(tmp_path):
    import http.client

    from qa_engine.server import ConnectionBalancer

    laws, home = tmp_path / "laws", tmp_path / "home"
    write_small_laws(laws)
    qa(home, "ingest", str(laws))
    qa(home, "build")
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", "--port", str(port), "--workers", "2"],
                              env={**os.environ, "QA_HOME": str(home), "QA_RATE_LIMIT": "1000000 per hour"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # the workers are forked from the server: their command line is its
        balancer = ConnectionBalancer(server.pid, worker_command=Path(f"/proc/{server.pid}/cmdline").read_bytes())
        deadline = time.time() + 120
        while len(balancer.socket_counts()) < 2 or not _answers(port):
            assert server.poll() is None and time.time() < deadline, "qa serve did not come up"
            time.sleep(0.5)
        statuses, closed = [], []
        stop = threading.Event()

        def keep_asking():  # one kept-alive connection; http.client connects again after a close
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while not stop.is_set():
                connection.request("POST", "/v1/ask", body=json.dumps({"question": "偶然所得的税率是多少"}),
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
                closed.append(response.getheader("Connection") == "close")
            connection.close()

        askers = [threading.Thread(target=keep_asking) for _ in range(16)]
        for thread in askers:
            thread.start()
        time.sleep(6)
        counts = sorted(balancer.socket_counts().values())
        stop.set()
        for thread in askers:
            thread.join(timeout=60)
        assert set(statuses) == {200} and len(statuses) > 100
        assert counts[1] - counts[0] <= 2, f"sockets per worker {counts}: more than one connection apart"
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
    assert "Traceback" not in output, output


def _answers(port: int) -> bool:
    try:
        return call(f"http://127.0.0.1:{port}/healthz", timeout=5)[0] == 200
    except OSError:
        return False
