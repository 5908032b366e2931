"""A small WSGI app for the promshm uWSGI plugin (examples/uwsgi/uwsgi.ini).

It uses the promshm Python package like prometheus_client. Under the plugin
there is nothing to configure: the plugin creates the shared area in the
uWSGI master before the fork and exports its path as PROMSHM_AREA, so these
metrics land in the same area as the plugin's request metrics, and the
plugin flushes them at the end of every request. /metrics (the plugin's
route, or its master listener) shows both on one page.

Endpoints:
  /            hello, counts app_greetings_total{lang}
  /work        a little work, counts app_jobs_total{kind} and observes
               app_job_duration_seconds
  /sleep?s=N   sleeps N seconds (default 1, at most 30): keeps a worker busy
  /ping        nothing (health check)
"""

import time
from urllib.parse import parse_qs

import promshm

GREETINGS = promshm.Counter("app_greetings", "Greetings sent.", ["lang"])
JOBS = promshm.Counter("app_jobs", "Jobs done.", ["kind"])
JOB_TIME = promshm.Histogram("app_job_duration_seconds", "Time spent on a job.")
IN_PROGRESS = promshm.Gauge("app_in_progress", "Requests in progress.", multiprocess_mode="livesum")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    IN_PROGRESS.inc()
    try:
        if path == "/":
            GREETINGS.labels("en").inc()
            body = b"hello\n"
        elif path == "/work":
            with JOB_TIME.time():
                JOBS.labels("work").inc()
                body = b"done\n"
        elif path == "/sleep":
            q = parse_qs(environ.get("QUERY_STRING", ""))
            secs = min(float(q.get("s", ["1"])[0]), 30.0)
            time.sleep(secs)
            body = b"slept\n"
        elif path == "/ping":
            body = b"pong\n"
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
    finally:
        IN_PROGRESS.dec()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
