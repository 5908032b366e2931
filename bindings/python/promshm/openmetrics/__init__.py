"""OpenMetrics exposition (``prometheus_client.openmetrics`` names)."""
