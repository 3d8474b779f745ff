"""Bounded soak test of the HTTP API on loopback: mixed traffic for minutes, zero errors, flat memory.

Starts `qa serve` on a free 127.0.0.1 port over a built home (with no --home: ingests the shared
laws and the shipped answers into a scratch home and builds it first, 2-3 minutes), then runs
CLIENTS concurrent clients for MINUTES, each in a closed loop without think time:

- ~80% POST /v1/ask with a question from bench/questions/*.jsonl (never the dev set),
- ~12% POST /v1/feedback on the answer the client just received,
- ~8% POST /v1/escalations for the question it just asked (fake names, phones 1380000xxxx).

Every non-2xx response other than 429 (rate limited, which is expected and counted apart) and
every connection error is an error; the goal is zero. The RSS of the granian main process and its
workers is sampled every few seconds; growth is measured from the end of the first minute (caches
warm) to the end, against --rss-bound-mib. Exits 1 if there were errors or memory grew past the
bound. The run is bounded by time and by --max-requests.

    python bench/soak.py --minutes 3 --clients 16 --workers 2 --write-docs
    python bench/soak.py --home /tmp/home --minutes 1 --json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import free_port, percentile  # noqa: E402

QUESTION_FILES = sorted((ROOT / "bench" / "questions").glob("*.jsonl"))
SHARED_LAWS = ROOT.parent / "shared" / "corpus" / "laws"
SHIPPED_ANSWERS = ROOT / "corpus" / "answers"
BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
START, END = "<!-- soak:start (written by bench/soak.py --write-docs) -->", "<!-- soak:end -->"

KINDS = {"ask": "/v1/ask", "feedback": "/v1/feedback", "escalation": "/v1/escalations"}
MIX = {"ask": 0.80, "feedback": 0.12, "escalation": 0.08}
REQUEST_TIMEOUT_S = 60
MiB = 1024 * 1024


def soak_questions() -> list[str]:
    """The benchmark's own questions (language and routing sets); the dev set stays unseen."""
    found = []
    for path in QUESTION_FILES:
        for line in path.read_text("utf-8").splitlines():
            if line.strip() and isinstance(question := json.loads(line).get("question"), str) and question.strip():
                found.append(question)
    if not found:
        raise SystemExit(f"no questions in {ROOT / 'bench' / 'questions'}/*.jsonl")
    return found


def build_scratch_home() -> Path:
    """Ingest the shared laws and the shipped answers into a new home and build it (minutes)."""
    if not SHARED_LAWS.is_dir():
        raise SystemExit(f"the shared law corpus is missing at {SHARED_LAWS}: give --home with a built index instead")
    home = Path(tempfile.mkdtemp(prefix="qa-soak-home-"))
    env = {**os.environ, "QA_HOME": str(home)}
    for step in (["ingest", str(SHARED_LAWS), str(SHIPPED_ANSWERS)], ["build"]):
        print(f"soak: qa {step[0]} into {home} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), *step], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"qa {step[0]} failed in {home}:\n{done.stderr}")
    print(f"soak: built {home} (reuse it with --home {home})", file=sys.stderr, flush=True)
    return home


def built_passages(home: Path) -> int:
    current = home / "CURRENT"
    if not current.exists():
        raise SystemExit(f'no index has been built in {home}: run "qa build" there, or leave out --home to build one')
    manifest = home / "indexes" / current.read_text().strip() / "manifest.json"
    return json.loads(manifest.read_text("utf-8"))["passages"]


# ---- the server and its memory ------------------------------------------------------------

WORKER_READY = re.compile(r"qa serve: worker \d+ ready")  # what each worker prints once warmed up (qa_engine/server.py)


def start_server(home: Path, port: int, workers: int, log: Path, cli: Path = ROOT / "cli.py") -> subprocess.Popen:
    """`qa serve` (``cli``) on 127.0.0.1:port, its output in ``log``; returns once every worker answers."""
    env = {**os.environ, "QA_HOME": str(home),
           # all clients share one address: lift the per-client limits (429s would still be counted apart)
           "QA_RATE_LIMIT": "1000000 per minute", "QA_CONSOLE_RATE_LIMIT": "1000000 per minute"}
    with log.open("w") as output:
        server = subprocess.Popen([sys.executable, str(cli), "serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--workers", str(workers)], env=env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"qa serve exited with status {server.returncode}:\n{log.read_text(errors='replace')}")
        # Workers warm up (load the index, answer one question) before they accept requests.
        if len(WORKER_READY.findall(log.read_text(errors="replace"))) >= workers and _healthy(port):
            return server
        time.sleep(0.25)
    stop_server(server)
    raise SystemExit(f"qa serve did not come up within 180 s:\n{log.read_text(errors='replace')}")


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()  # granian: graceful shutdown of the main process and its workers
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def server_processes(main: int) -> list[int]:
    """The granian main process and its workers (its children), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == main:
                children.append(int(entry.name))
    return [main, *sorted(children)]


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0  # gone meanwhile


# ---- the clients ---------------------------------------------------------------------------


class Tally:
    """Latencies and outcomes per kind of request, shared by the client threads."""

    def __init__(self, max_requests: int):
        self.lock = threading.Lock()
        self.left = max_requests
        self.latencies = {kind: [] for kind in KINDS}
        self.statuses = {kind: {} for kind in KINDS}
        self.error_samples: list[str] = []

    def take(self) -> bool:
        with self.lock:
            self.left -= 1
            return self.left >= 0

    def record(self, kind: str, outcome: str, seconds: float, detail: str = "") -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[kind][outcome] = self.statuses[kind].get(outcome, 0) + 1
            if is_error(outcome) and len(self.error_samples) < 10:
                self.error_samples.append(f"{kind} {outcome} {detail}"[:300])


def is_error(outcome: str) -> bool:
    """Connection errors (an exception name) and any status but 2xx and 429."""
    return not (outcome.isdigit() and (outcome.startswith("2") or outcome == "429"))


def client(number: int, port: int, deadline: float, asked: list[str], tally: Tally, seed: int) -> None:
    rng = random.Random(seed * 1000 + number)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    last: dict | None = None  # the last answer this client got: what its feedback and escalation refer to
    while time.monotonic() < deadline and tally.take():
        kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if last is None or (kind == "feedback" and not last["answer_id"]):
            kind = "ask"
        if kind == "ask":
            body = {"question": rng.choice(asked)}
        elif kind == "feedback":
            body = {"answer_id": last["answer_id"], "helpful": rng.random() < 0.7, "query_id": last["query_id"]}
            if rng.random() < 0.3:
                body["comment"] = rng.choice(["说得很清楚", "没有回答我的问题", "希望有更具体的例子"])
        else:
            body = {"question": last["question"], "name": f"测试用户{number}", "phone": str(13800000000 + number)}
        start = time.perf_counter()
        try:
            connection.request("POST", KINDS[kind], json.dumps(body, ensure_ascii=False).encode(),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            outcome, detail = str(response.status), payload[:200].decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            outcome, detail = type(exc).__name__, str(exc)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        tally.record(kind, outcome, time.perf_counter() - start, detail)
        if kind == "ask" and outcome == "200":
            data = json.loads(payload)
            answers = data.get("answers") or []
            last = {"question": body["question"], "query_id": data.get("query_id"),
                    "answer_id": answers[0]["id"] if answers else None}
    connection.close()


def sample_memory(main: int, samples: list[dict], stop: threading.Event, every: float, started: float) -> None:
    """Every ``every`` seconds until ``stop``, then once more: the RSS of each server process."""
    while True:
        stopped = stop.wait(every) if samples else False
        rss = {pid: rss_bytes(pid) for pid in server_processes(main)}
        samples.append({"t": round(time.monotonic() - started, 1), "total": sum(rss.values()), "rss": rss})
        if stopped:
            return


# ---- one run -------------------------------------------------------------------------------


def soak(home: Path, seconds: float, clients: int, workers: int, max_requests: int = 200_000,
         sample_every: float = 5.0, rss_bound_mib: float = 50.0, seed: int = 0, cli: Path = ROOT / "cli.py") -> dict:
    """Serve ``home``, run the clients for ``seconds``, stop the server; returns the summary."""
    asked = soak_questions()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="qa-soak-") as scratch:
        log = Path(scratch) / "serve.log"
        server = start_server(home, port, workers, log, cli)
        try:
            tally, samples, stop = Tally(max_requests), [], threading.Event()
            started = time.monotonic()
            sampler = threading.Thread(target=sample_memory, args=(server.pid, samples, stop, sample_every, started))
            sampler.start()
            threads = [threading.Thread(target=client, args=(n, port, started + seconds, asked, tally, seed))
                       for n in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.monotonic() - started
            stop.set()
            sampler.join()
        finally:
            stop_server(server)
        server_log = log.read_text(errors="replace")
    return summarize(tally, samples, wall, clients, workers, len(asked), rss_bound_mib, sample_every, server_log)


def summarize(tally: Tally, samples: list[dict], wall: float, clients: int, workers: int, questions: int,
              rss_bound_mib: float, sample_every: float, server_log: str) -> dict:
    kinds = {}
    for kind, latencies in tally.latencies.items():
        statuses = tally.statuses[kind]
        kinds[kind] = {
            "requests": len(latencies),
            "rps": round(len(latencies) / wall, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
            "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
            "rate_limited": statuses.get("429", 0),
            "errors": sum(n for outcome, n in statuses.items() if is_error(outcome)),
            "statuses": dict(sorted(statuses.items())),
        }
    total = sum(k["requests"] for k in kinds.values())
    errors = sum(k["errors"] for k in kinds.values())
    memory = memory_summary(samples, wall, rss_bound_mib, sample_every)
    booted = len(WORKER_READY.findall(server_log))
    return {
        "seconds": round(wall, 1),
        "clients": clients,
        "workers": workers,
        "questions": questions,
        "requests": total,
        "rps": round(total / wall, 1),
        "errors": errors,
        "error_samples": tally.error_samples,
        "kinds": kinds,
        "memory": memory,
        "worker_restarts": max(0, booted - workers),
        "server_tracebacks": server_log.count("Traceback"),
        "ok": errors == 0 and memory["within_bound"] and booted == workers and "Traceback" not in server_log,
    }


def memory_summary(samples: list[dict], wall: float, bound_mib: float, every: float) -> dict:
    """Growth from the end of the warm-up (the first minute, or the first third of a shorter run)
    to the last sample, for the main process and workers together and per process."""
    warm_up = min(60.0, wall / 3)
    baseline = next((s for s in samples if s["t"] >= warm_up), samples[-1])
    end = samples[-1]
    growth = (end["total"] - baseline["total"]) / MiB
    return {
        "samples": len(samples),
        "every_s": every,
        "start_mib": round(samples[0]["total"] / MiB, 1),
        "baseline_at_s": baseline["t"],
        "baseline_mib": round(baseline["total"] / MiB, 1),
        "end_at_s": end["t"],
        "end_mib": round(end["total"] / MiB, 1),
        "peak_mib": round(max(s["total"] for s in samples) / MiB, 1),
        "growth_mib": round(growth, 1),
        "bound_mib": bound_mib,
        "within_bound": growth < bound_mib,
        "processes": {str(pid): {"baseline_mib": round(baseline["rss"].get(pid, 0) / MiB, 1),
                                 "end_mib": round(rss / MiB, 1)}
                      for pid, rss in end["rss"].items()},
        "series_mib": [[s["t"], round(s["total"] / MiB, 1)] for s in samples],
    }


# ---- the report ----------------------------------------------------------------------------


def markdown(summary: dict) -> str:
    memory = summary["memory"]
    rows = "\n".join(
        f"| POST {KINDS[kind]} | {k['requests']} | {k['rps']} | {k['p50_ms']} | {k['p99_ms']} | {k['max_ms']} | "
        f"{k['errors']} | {', '.join(f'{s}: {n}' for s, n in k['statuses'].items())} |"
        for kind, k in summary["kinds"].items())
    processes = ", ".join(f"{p['baseline_mib']} → {p['end_mib']}" for p in memory["processes"].values())
    series = " ".join(f"{mib:.0f}" for _, mib in memory["series_mib"][::max(1, len(memory["series_mib"]) // 12)])
    verdict = "within" if memory["within_bound"] else "OVER"
    return f"""{START}
## Soak

`{summary['command']}` on {summary['date']}: `qa serve` (granian,
{summary['workers']} workers) on 127.0.0.1 over {summary['passages']} passages (the shared laws and the shipped
answers), and {summary['clients']} clients in one process on the same machine ({summary['machine']}), each in a
closed loop without think time for {summary['seconds']:.0f} s: about 80% POST /v1/ask ({summary['questions']} questions from
`bench/questions/*.jsonl`, not the dev set; every ask is recorded, as in production), 12% POST
/v1/feedback on the answer just received, 8% POST /v1/escalations (fake names, phones
1380000xxxx). Per-client rate limits lifted (all clients share one address). Load average
(1 min): {summary['load_before']:.1f} before, {summary['load_after']:.1f} after; the clients and the server share the cores.

| endpoint | requests | requests/s | p50 ms | p99 ms | max ms | errors | statuses |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
{rows}
| all | {summary['requests']} | {summary['rps']} | | | | {summary['errors']} | |

With {summary['clients']} clients on {summary['workers']} workers most of each latency is waiting for a free
worker, so the three kinds show similar figures.

- Errors (any non-2xx but 429, any connection error): **{summary['errors']}**.
- Server log: {summary['server_tracebacks']} tracebacks, {summary['worker_restarts']} worker restarts.
- Memory, RSS of the granian main process and its workers together, sampled every {memory['every_s']:.0f} s
  ({memory['samples']} samples): {memory['start_mib']} MiB when the clients started, {memory['baseline_mib']} MiB after the
  first minute ({memory['baseline_at_s']:.0f} s), {memory['end_mib']} MiB at the end ({memory['end_at_s']:.0f} s), peak {memory['peak_mib']} MiB.
  **RSS grew {memory['growth_mib']} MiB over the last {(memory['end_at_s'] - memory['baseline_at_s']) / 60:.1f} minutes: {verdict} the
  {memory['bound_mib']:.0f} MiB bound.** Per process (main, workers), MiB after the first minute → end:
  {processes}. Total MiB over the run: {series}.
{END}"""


def write_docs(section: str, path: Path) -> None:
    """Replace the soak section of ``path`` (between its markers); other sections stay as they are."""
    text = path.read_text("utf-8") if path.exists() else "# Benchmarks\n"
    ours = re.compile(re.escape(START.split(" (")[0]) + r".*?" + re.escape(END), re.S)
    if ours.search(text):
        text = ours.sub(lambda _: section, text)
    elif "<!-- quality:start" in text:  # after the HTTP load section, before the quality tables
        at = text.index("<!-- quality:start")
        text = text[:at] + section + "\n\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the clients run (default 3)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    parser.add_argument("--home", type=Path, help="a home with a built index (default: build one in a scratch home)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="stop after this many requests (default 200000)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    parser.add_argument("--rss-bound-mib", type=float, default=50.0, help="allowed RSS growth after the first minute")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--write-docs", action="store_true", help=f"write the Soak section of {BENCHMARKS.relative_to(ROOT)}")
    args = parser.parse_args()
    if args.minutes <= 0 or args.clients < 1 or args.workers < 1 or args.max_requests < 1:
        parser.error("--minutes, --clients, --workers and --max-requests must be positive")

    home = args.home or build_scratch_home()
    passages = built_passages(home)
    load_before = os.getloadavg()[0]
    summary = soak(home, args.minutes * 60, args.clients, args.workers, args.max_requests, args.sample_every,
                   args.rss_bound_mib)
    command = f"python bench/soak.py --minutes {args.minutes:g} --clients {args.clients} --workers {args.workers}"
    summary = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "home": str(home), "passages": passages,
               "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
               "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2), **summary}
    section = markdown(summary)
    if args.write_docs:
        write_docs(section, BENCHMARKS)
    print(json.dumps(summary, ensure_ascii=False) if args.json else section)
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
