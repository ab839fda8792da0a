"""Prometheus metrics and logging: what the service tells its operators."""
