"""Rendering: specs + templates -> Grafana dashboards, Grafana rule groups, Prometheus rules."""
