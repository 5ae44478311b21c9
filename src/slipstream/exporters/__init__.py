"""Exporters: Prometheus metrics and their exposition."""
