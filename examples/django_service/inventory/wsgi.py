"""WSGI entry point: telemetry first, then Django (its instrumentation hooks into ``django.setup()``)."""

import os

import platform_obs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory.settings")
platform_obs.init(service_name="inventory")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
