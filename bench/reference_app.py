"""A WSGI app that does a fixed amount of pure-Python work per request and nothing else: the
reference bench/load.py runs beside qa serve, to show what latency this machine gives any
server of the same CPU cost per request. QA_REFERENCE_LOOPS sets the work."""

import os

LOOPS = int(os.environ.get("QA_REFERENCE_LOOPS", "0"))


def app(environ, start_response):
    environ["wsgi.input"].read()
    total = 0
    for number in range(LOOPS):
        total += number
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"ok": true}']
