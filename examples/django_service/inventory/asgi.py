"""ASGI entry point (uvicorn, daphne): the same order as wsgi.py."""

import os

import platform_obs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory.settings")
platform_obs.init(service_name="inventory")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
