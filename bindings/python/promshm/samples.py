"""Samples, exemplars and timestamps of metric families (``prometheus_client.samples``)."""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

__all__ = ["Sample", "Exemplar", "Timestamp"]


class Timestamp(NamedTuple):
    sec: int
    nsec: int

    def __float__(self) -> float:
        return self.sec + self.nsec / 1e9


class Exemplar(NamedTuple):
    labels: Dict[str, str]
    value: float
    timestamp: Optional[float] = None


class Sample(NamedTuple):
    name: str
    labels: Dict[str, str]
    value: float
    timestamp: Optional[float] = None
    exemplar: Optional[Exemplar] = None
