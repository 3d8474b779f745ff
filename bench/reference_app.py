"""A WSGI app that does a fixed amount of pure-Python work per request and nothing else: the
reference bench/load.py runs beside qa serve, to show what latency this machine gives any
server of the same CPU cost per request. QA_REFERENCE_LOOPS sets the work."""

import os

LOOPS = int(os.environ.get("QA_REFERENCE_LOOPS", "0"))


def fixed_work(loops: int) -> int:
    total = 0
    for number in range(loops):
        total += number
    return total


def app(environ, start_response):
    environ["wsgi.input"].read()
    fixed_work(LOOPS)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"ok": true}']
