"""The module-scoped golden-path run (servers, services, traffic) lives in golden_run.py."""

from golden_run import golden  # noqa: F401 - registers the fixture for this folder
