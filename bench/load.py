"""Bounded loopback load check of the HTTP API: requests/s and p50/p99 latency of POST /v1/ask.

Starts `qa serve` on a free 127.0.0.1 port over QA_HOME (a built index), sends questions from
CLIENTS concurrent clients for a fixed number of requests, and writes the figures to
docs/BENCHMARKS.md under "HTTP load". Also measures the agent console's search (POST /v1/search,
one client, as an agent typing) against its 100 ms budget.

    QA_HOME=/tmp/home python bench/load.py --clients 16 --seconds 20 --workers 2

With wrk it also runs the same saturating load against bench/reference_app.py, a server that only
burns the CPU qa serve spent a request (and half of it): the latency the machine itself gives.

The load comes from wrk (C, event loop: `apt-get install wrk`) where it is installed, so that the
clients take little of the CPU the server needs on the same machine; otherwise (or with
--python-client) from Python threads with keep-alive connections, which take much more.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import load_questions, questions_path  # noqa: E402
from bench.reference_app import fixed_work  # noqa: E402


PAUSES_MS = [80, 60, 45, 35, 25]
P99_TARGET_MS = 50  # issue 6: p99 of /v1/ask at 16 concurrent clients


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(connection: http.client.HTTPConnection, path: str, body: dict, key: str = "") -> int:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    connection.request("POST", path, json.dumps(body, ensure_ascii=False).encode(), headers)
    response = connection.getresponse()
    response.read()
    return response.status


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run_load(port: int, path: str, clients: int, total: int, asked: list[str], key: str = "") -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for index in counter:
            question = asked[(index * 7 + number) % len(asked)]
            start = time.perf_counter()
            try:
                status = str(post(connection, path, {"question": question}, key))
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "seconds": round(wall, 2),
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "statuses": statuses,
    }


WRK_SCRIPT = """
local bodies = {%(bodies)s}
local sent = 0
%(pause)s
request = function()
  sent = sent + 1
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"%(auth)s}, bodies[(sent %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %%d, "microseconds": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d, "non_2xx": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(port: int, path: str, clients: int, seconds: int, asked: list[str], key: str = "", pause_ms: int = 0) -> dict:
    """The same load as ``run_load``, from wrk: ``clients`` connections on 2 threads for ``seconds``,
    each waiting ``pause_ms`` after an answer before its next request (0: at once)."""
    bodies = ", ".join(f"[==[{json.dumps({'question': q})}]==]" for q in asked)  # ASCII JSON: no "]==]"
    auth = f', ["Authorization"] = "Bearer {key}"' if key else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", encoding="utf-8") as script:
        pause = f"delay = function() return {pause_ms} end" if pause_ms else ""
        script.write(WRK_SCRIPT % {"bodies": bodies, "path": path, "auth": auth, "pause": pause})
        script.flush()
        done = subprocess.run(
            ["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "--timeout", "10s", "-s", script.name, f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, check=True,
        )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    wall = figures["microseconds"] / 1e6
    ok = figures["requests"] - figures["non_2xx"] - figures["socket_errors"]
    statuses = {"200": ok, **({"non-2xx": figures["non_2xx"]} if figures["non_2xx"] else {}),
                **({"socket errors": figures["socket_errors"]} if figures["socket_errors"] else {})}
    return {
        "requests": figures["requests"],
        "seconds": round(wall, 2),
        "rps": round(figures["requests"] / wall, 1),
        "p50_ms": round(figures["p50_us"] / 1000, 1),
        "p99_ms": round(figures["p99_us"] / 1000, 1),
        "max_ms": round(figures["max_us"] / 1000, 1),
        "statuses": statuses,
    }


def server_cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by a process and its children (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return own + sum(server_cpu_seconds(int(child)) or 0.0 for child in children)


def start_server(home: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "QA_HOME": home, "QA_RATE_LIMIT": "1000000 per minute", "QA_CONSOLE_RATE_LIMIT": "1000000 per minute"}
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", "--port", str(port), "--workers", str(workers)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"qa serve exited: {server.stderr.read()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                time.sleep(2 * workers)  # /healthz answered by one worker; give the others time to warm up
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("qa serve did not come up within 180 s")


def start_reference(port: int, workers: int, loops: int) -> subprocess.Popen:
    """bench/reference_app.py (``loops`` iterations of work a request) served as qa serve serves its app."""
    env = {**os.environ, "QA_REFERENCE_LOOPS": str(loops), "PYTHONPATH": str(ROOT / "bench")}
    server = subprocess.Popen([sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", str(workers),
                               "--blocking-threads", "1", "--no-ws", "--log-level", "warning", "--port", str(port),
                               "reference_app:app"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the reference server did not come up within 60 s")


def run_reference(workers: int, clients: int, seconds: int, cpu_ms: float) -> dict:
    """The saturation run against the reference app, its work set so that the server spends about
    ``cpu_ms`` of CPU a request (two short runs measure the cost and correct the work)."""
    loops = int(cpu_ms * loops_per_ms())
    body = ["reference"]
    for run_seconds in (4, 4, seconds):
        port = free_port()
        server = start_reference(port, workers, loops)
        try:
            run_load(port, "/", clients, 4 * clients, body)
            cpu_before = server_cpu_seconds(server.pid)
            result = run_wrk(port, "/", clients, run_seconds, body)
            spent = (server_cpu_seconds(server.pid) - cpu_before) * 1000 / result["requests"]
        finally:
            server.terminate()
            server.wait(timeout=60)
        loops = int(loops * cpu_ms / spent)
    return result | {"server_cpu_ms": round(spent, 2)}


def loops_per_ms() -> float:
    """How many iterations of the reference app's loop this process runs in a millisecond of CPU."""
    started = time.thread_time()
    fixed_work(500_000)
    return 500_000 / ((time.thread_time() - started) * 1000)


def machine_jitter(cpu_ms: float, in_a_row: int, seconds: float = 10) -> dict:
    """How steadily this machine runs the reference app's work, sized to ``cpu_ms``, in this process
    with no server running: p50/p99 of one piece, and of ``in_a_row`` pieces in a row (what a request
    waits for when it is queued behind the others on its worker)."""
    loops = int(cpu_ms * loops_per_ms())
    pieces = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        fixed_work(loops)
        pieces.append((time.perf_counter() - started) * 1000)
    runs = [sum(pieces[first:first + in_a_row]) for first in range(len(pieces) - in_a_row + 1)]
    return {"cpu_ms": cpu_ms, "in_a_row": in_a_row, "seconds": seconds,
            **{f"{name}_{label}_ms": round(percentile(values, p), 1)
               for name, values in (("piece", pieces), ("row", runs)) for label, p in (("p50", 50), ("p99", 99))}}


@contextmanager
def console_key(home: str):
    """An agent's API key for the console's search, revoked when the run is over."""
    from qa_engine.config import Settings
    from qa_engine.service import QAService

    service = QAService(Settings.from_env(home=home))
    name = f"bench-load-{os.getpid()}"
    try:
        yield service.add_key(name, "agent", "bench/load.py")["key"]
    finally:
        service.revoke_key(name, "bench/load.py")
        service.store.close()


def cpu_note(ask: dict, cores: int) -> str:
    if "server_cpu_ms" not in ask:
        return ""
    ceiling = cores * 1000 / ask["server_cpu_ms"]
    return (f"The server spent {ask['server_cpu_ms']} ms of CPU per /v1/ask (all workers): {cores} cores fully given to the\n"
            f"server would answer at most {ceiling:.0f} requests/s. A shared machine's speed varies from hour to hour, and\n"
            f"this figure with it: compare the rows of one run, not runs.\n")


def connections_per_worker(port: int) -> list[int] | None:
    """How many of the clients' connections each server process holds, most first (None where
    Linux's ``ss`` is missing)."""
    if shutil.which("ss") is None:
        return None
    listing = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True).stdout
    return sorted(Counter(re.findall(r"pid=(\d+)", listing)).values(), reverse=True) or None


def split_note(split: list[int] | None) -> str:
    if not split:
        return ""
    return (f"Halfway through the first run the workers held {' and '.join(map(str, split))} of the connections. A kept-alive\n"
            f"connection stays with the worker that accepted it, and each worker answers as many requests a second,\n"
            f"so the clients of a fuller worker would wait longer: the workers close connections they hold beyond\n"
            f"their share until the split is even (ConnectionBalancer in qa_engine/server.py).\n")


def write_report(report: str, path: Path) -> None:
    text = path.read_text("utf-8") if path.exists() else "# Benchmarks\n"
    # up to the next heading or the next script's marker (<!-- soak:start -->, <!-- quality:start -->)
    section = re.compile(r"^## HTTP load\n.*?(?=^## |^<!-- |\Z)", re.S | re.M)
    if section.search(text):
        text = section.sub(lambda _: report.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + report
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=os.environ.get("QA_HOME"), help="knowledge base home with a built index (default $QA_HOME)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1600, help="total /v1/ask requests (Python client: a bounded run)")
    parser.add_argument("--seconds", type=int, default=20, help="how long wrk sends /v1/ask requests")
    parser.add_argument("--python-client", action="store_true", help="use Python threads even where wrk is installed")
    parser.add_argument("--pause-ms", type=pause_list, default=PAUSES_MS,
                        help="wrk only: comma-separated pauses, one run each whose clients wait this long after an answer, "
                             "to measure latency at a set throughput rather than at saturation (16 clients x 45 ms: a "
                             f"little over 300 requests/s; default {','.join(map(str, PAUSES_MS))}; 0: no paced runs)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the saturation runs against bench/reference_app.py, a server of the same (and half "
                             "the) CPU cost per request that does nothing else")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    if not args.home:
        parser.error("give --home or set QA_HOME to a built knowledge base")

    asked = [q["question"] for q in load_questions()]
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    split = None
    load_before = os.getloadavg()[0]
    port = free_port()
    server = start_server(args.home, port, args.workers)
    try:
        run_load(port, "/v1/ask", args.clients, 4 * args.clients, asked)  # warm connections and caches
        cpu_before = server_cpu_seconds(server.pid)
        if use_wrk:
            with ThreadPoolExecutor(1) as pool:
                running = pool.submit(run_wrk, port, "/v1/ask", args.clients, args.seconds, asked)
                time.sleep(args.seconds / 2)
                split = connections_per_worker(port)
                ask = running.result()
        else:
            ask = run_load(port, "/v1/ask", args.clients, args.requests, asked)
        cpu_after = server_cpu_seconds(server.pid)
        if cpu_before is not None and cpu_after is not None:
            ask["server_cpu_ms"] = round((cpu_after - cpu_before) * 1000 / ask["requests"], 2)
        paced = [run_wrk(port, "/v1/ask", args.clients, args.seconds, asked, pause_ms=pause) | {"pause_ms": pause}
                 for pause in (args.pause_ms if use_wrk else [])]
        with console_key(args.home) as key:
            console = run_load(port, "/v1/search", 1, 300, asked, key)
    finally:
        server.terminate()
        server.wait(timeout=60)
    references = []
    if use_wrk and args.reference and "server_cpu_ms" in ask:
        references = [run_reference(args.workers, args.clients, args.seconds, ask["server_cpu_ms"] * share) for share in (1, 0.5)]
    jitter = machine_jitter(ask["server_cpu_ms"], max(1, args.clients // args.workers)) if "server_cpu_ms" in ask else None

    debounce = int(re.search(r"DEBOUNCE_MS = (\d+)", (ROOT / "qa_engine" / "static" / "console.js").read_text("utf-8")).group(1))
    passages = json.loads((Path(args.home) / "indexes" / (Path(args.home) / "CURRENT").read_text().strip() / "manifest.json").read_text())["passages"]
    if use_wrk:
        pauses = ",".join(map(str, args.pause_ms)) or "0"
        command = f"python bench/load.py --clients {args.clients} --seconds {args.seconds} --workers {args.workers} --pause-ms {pauses}"
        clients = f"{args.clients} wrk connections (2 threads, {args.seconds} s)"
    else:
        command = f"python bench/load.py --python-client --clients {args.clients} --requests {args.requests} --workers {args.workers}"
        clients = f"{args.clients} Python client threads, each with a keep-alive connection,"
    report = f"""## HTTP load

`{command}` on {time.strftime('%Y-%m-%d %H:%M')}:
`qa serve` (granian, {args.workers} workers) on 127.0.0.1 over the shipped corpus ({passages} passages);
{clients} on the same machine ({os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}),
asking the {len(asked)} questions of {questions_path().name if questions_path().exists() else "a built-in list"} in turn.
`/v1/ask` records every question (query log, expert tickets), as in production. Load average
before the run: {load_before:.1f} (other work on the machine skews the figures; rerun on an idle one).

| endpoint | clients | requests | requests/s | p50 ms | p99 ms | max ms | statuses |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
| POST /v1/ask | {args.clients} | {ask['requests']} | {ask['rps']} | {ask['p50_ms']} | {ask['p99_ms']} | {ask['max_ms']} | {ask['statuses']} |
{paced_rows(paced, args.clients)}{reference_rows(references, args.clients)}| POST /v1/search (console) | 1 | {console['requests']} | {console['rps']} | {console['p50_ms']} | {console['p99_ms']} | {console['max_ms']} | {console['statuses']} |

{cpu_note(ask, os.cpu_count() or 1)}{split_note(split)}
{paced_note(paced, args.clients)}{reference_note(references)}{jitter_note(jitter, args.clients, args.workers)}The console waits {debounce} ms after the last keystroke before searching, so an answer appears
{debounce + console['p50_ms']:.0f} ms (median) / {debounce + console['p99_ms']:.0f} ms (p99) after the agent stops typing (budget: 100 ms).
"""
    write_report(report, args.output)
    print(report)


def pause_list(text: str) -> list[int]:
    """``--pause-ms 60,45,30``: the pauses of the paced runs, in milliseconds (0 alone: none)."""
    try:
        pauses = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of milliseconds: {text!r}") from None
    if any(pause < 0 for pause in pauses):
        raise argparse.ArgumentTypeError("a pause cannot be negative")
    return [pause for pause in pauses if pause]


def paced_rows(paced: list[dict], clients: int) -> str:
    return "".join(f"| POST /v1/ask, each client pausing {run['pause_ms']} ms | {clients} | {run['requests']} | {run['rps']} | "
                   f"{run['p50_ms']} | {run['p99_ms']} | {run['max_ms']} | {run['statuses']} |\n" for run in paced)


def reference_rows(references: list[dict], clients: int) -> str:
    return "".join(f"| reference app, {run['server_cpu_ms']} ms CPU a request | {clients} | {run['requests']} | {run['rps']} | "
                   f"{run['p50_ms']} | {run['p99_ms']} | {run['max_ms']} | {run['statuses']} |\n" for run in references)


def reference_note(references: list[dict]) -> str:
    if not references:
        return ""
    return ("The reference rows are the same saturating load against `bench/reference_app.py` under the same granian\n"
            "settings: a WSGI app that only runs a fixed Python loop, sized in this run to the CPU qa serve spent a\n"
            "request and to half of it. They show the latency this machine gives any server of that cost: the part of\n"
            "the tail that is the machine's (scheduling, the clients sharing the cores), not the engine's.\n\n")


def jitter_note(jitter: dict | None, clients: int, workers: int) -> str:
    if jitter is None:
        return ""
    return (f"With no server running, this process timed the reference app's work sized to {jitter['cpu_ms']} ms for {jitter['seconds']} s:\n"
            f"one piece took p50 {jitter['piece_p50_ms']} ms, p99 {jitter['piece_p99_ms']} ms; {jitter['in_a_row']} pieces in a row "
            f"(a request's wait with {clients} clients\non {workers} workers) p50 {jitter['row_p50_ms']} ms, p99 "
            f"{jitter['row_p99_ms']} ms. That p99 is the machine's alone: no network, no queue, one process.\n\n")


def paced_note(paced: list[dict], clients: int) -> str:
    """What the paced runs show: the highest throughput they reached with p99 within the 50 ms target."""
    if not paced:
        return ""
    within = [run for run in paced if run["p99_ms"] <= P99_TARGET_MS]
    capacity = (f"The most any paced run offered with p99 within {P99_TARGET_MS} ms was {max(run['rps'] for run in within)} requests/s."
                if within else f"No paced run kept p99 within {P99_TARGET_MS} ms.")
    return (f"The first row is the server at saturation: every client asks again the moment it is answered, so each\n"
            f"request queues behind the others (latency = clients / throughput). In the paced rows the same {clients}\n"
            f"clients wait after each answer, which sets the throughput they offer: the latency a caller sees at\n"
            f"that throughput. {capacity}\n\n")


if __name__ == "__main__":
    main()
