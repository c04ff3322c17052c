"""platform-obs: one-call OpenTelemetry setup and the standard Grafana dashboards and alerts."""
