"""Shared by the pre-fork server tests: a request plan, a concurrent blast
of requests, and the exactness checks of examples/python/app.py's metrics."""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

from conftest import parse_text, value


def _plan(n: int) -> List[str]:
    paths = []
    for i in range(n):
        k = i % 4
        paths.append(["/", "/order?item=apple&qty=2", "/order?item=pear&qty=1", "/fail"][k])
    return paths


def _blast(server: Any, paths: List[str]) -> collections.Counter:
    statuses: collections.Counter = collections.Counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for status, _, _ in pool.map(server.get, paths):
            statuses[status] += 1
    return statuses


def _check_exact(text: str, paths: List[str], openmetrics: bool = False) -> Dict:
    s = parse_text(text, openmetrics)
    sent = collections.Counter(paths)
    name = "http_requests_total"
    assert value(s, name, method="GET", path="/", status="200") == sent["/"]
    orders = sent["/order?item=apple&qty=2"] + sent["/order?item=pear&qty=1"]
    assert value(s, name, method="GET", path="/order", status="200") == orders
    assert value(s, name, method="GET", path="/fail", status="500") == sent["/fail"]
    assert sum(v for (n, _), v in s.items() if n == name) == len(paths)
    assert value(s, "shop_orders_total", item="apple") == 2 * sent["/order?item=apple&qty=2"]
    assert value(s, "shop_orders_total", item="pear") == sent["/order?item=pear&qty=1"]
    counts = sum(v for (n, _), v in s.items() if n == "http_request_duration_seconds_count")
    assert counts == len(paths)
    assert value(s, "http_requests_inflight") == 0
    return s
