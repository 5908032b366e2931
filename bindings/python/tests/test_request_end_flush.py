"""A response that a client has received is counted on every worker's page.

The WSGI and ASGI helpers flush a request's buffered updates *before* the
last byte of its response goes out: a client that scrapes another worker
right after its response arrived sees its request counted. (A flush only at
the server's ``close()``, after the body is sent, left a window in which a
descheduled worker's request was missing from a scrape answered elsewhere.)

Each test runs the app in a child process that stops at the moment the
server would send the last byte and waits; the test reads the shared area
from its own process meanwhile."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import promshm
from conftest import child_env, parse_text, value

WSGI_CHILD = """
import sys, promshm
hits = promshm.Counter("answered", "Requests answered.")

def app(environ, start_response):
    hits.inc()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"part one, ", b"part two"]

wrapped = promshm.MetricsMiddleware(app)
body = wrapped({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, lambda status, headers: None)
chunks = list(body)       # a server writes each chunk as it gets it
print("sent", flush=True)  # ... the last byte is on its way to the client
sys.stdin.readline()
body.close()
print("closed", flush=True)
"""

ASGI_CHILD = """
import asyncio, sys, promshm
hits = promshm.Counter("answered", "Requests answered.")

async def app(scope, receive, send):
    hits.inc()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done", "more_body": False})

async def send(message):
    if message["type"] == "http.response.body" and not message.get("more_body", False):
        print("sent", flush=True)   # the final body reaches the client now
        sys.stdin.readline()

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

asyncio.run(promshm.ASGIMetricsMiddleware(app)({"type": "http", "path": "/"}, receive, send))
print("closed", flush=True)
"""


def _answered_while_sending(tmp_path, code: str) -> float:
    area = tmp_path / "answered.area"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    env = child_env(PROMSHM_AREA=str(area), PROMSHM_FLUSH_INTERVAL="0")
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "sent"
        text = promshm.Area.open(area, read_only=True).render().decode()
        seen = value(parse_text(text), "answered_total")
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "closed"
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    return seen


def test_wsgi_request_is_published_before_its_response_is_sent(tmp_path):
    assert _answered_while_sending(tmp_path, WSGI_CHILD) == 1


def test_asgi_request_is_published_before_its_final_body_is_sent(tmp_path):
    assert _answered_while_sending(tmp_path, ASGI_CHILD) == 1
