"""gunicorn settings for the promshm example: 4 sync workers, loopback only.

Environment overrides (used by the tests): BIND, WORKERS, PRELOAD=1,
MAX_REQUESTS (recycle workers after that many requests).
"""

import os

wsgi_app = "app:app"
bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WORKERS", "4"))
worker_class = "sync"
preload_app = os.environ.get("PRELOAD") == "1"
max_requests = int(os.environ.get("MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 4
graceful_timeout = 10
accesslog = None

# Optional: promshm needs no hooks (the app's middleware flushes at request
# end and dead workers are found without child_exit); post_fork attaches each
# new worker to the shared area at once when the master already uses it.
from promshm.gunicorn_hooks import post_fork  # noqa: E402,F401
