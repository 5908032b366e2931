"""Trivial WSGI apps for bindings/uwsgi/bench/run.sh.

`application` does nothing; `application_metrics` also increments a
promshm counter (the Python package) per request.
"""

_BODY = [b"ok\n"]
_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "3")]


def application(environ, start_response):
    start_response("200 OK", _HEADERS)
    return _BODY


_counter = None


def application_metrics(environ, start_response):
    global _counter
    if _counter is None:
        import promshm

        _counter = promshm.Counter("bench_hits", "Hits.", ["path"]).labels("/")
    _counter.inc()
    start_response("200 OK", _HEADERS)
    return _BODY
