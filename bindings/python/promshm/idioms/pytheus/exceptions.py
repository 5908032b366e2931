"""pytheus' exceptions (``pytheus.exceptions``).

Each also derives from the promshm error raised for the same mistake, so code
catching either keeps working: :class:`UnobservableMetricException` is a
:class:`promshm.UnobservableMetricError` (a ``ValueError``),
:class:`LabelValidationException` a :class:`promshm.LabelError`,
:class:`BucketException` a :class:`promshm.InvalidArgumentError`. Messages name
the metric.
"""

from __future__ import annotations

from ...errors import InvalidArgumentError, LabelError, UnobservableMetricError

__all__ = [
    "PytheusException",
    "UnobservableMetricException",
    "InvalidBackendClassException",
    "InvalidBackendConfigException",
    "LabelValidationException",
    "BucketException",
]


class PytheusException(Exception):
    """Base class of pytheus' exceptions."""


class UnobservableMetricException(PytheusException, UnobservableMetricError):
    """An update on a metric that still needs label values."""


class InvalidBackendClassException(PytheusException):
    """``PYTHEUS_BACKEND_CLASS`` (or ``load_backend(backend_class=)``) is not a backend class."""


class InvalidBackendConfigException(PytheusException):
    """``PYTHEUS_BACKEND_CONFIG`` could not be read as a JSON object."""


class LabelValidationException(PytheusException, LabelError):
    """Invalid label names or values for a metric."""


class BucketException(PytheusException, InvalidArgumentError):
    """Invalid histogram buckets."""
