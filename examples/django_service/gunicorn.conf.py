"""gunicorn settings for the inventory example: ``gunicorn -c gunicorn.conf.py inventory.wsgi``.

``init()`` here runs in gunicorn's master, so the master's own lines (start-up, worker boots and
exits) are JSON platform logs too; every worker joins the same set-up when ``inventory/wsgi.py``
calls ``init()`` again with the same arguments. Access lines become structured records.
"""

import os

import platform_obs

platform_obs.init(service_name="inventory")

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"  # one structured record per request (method, path, status, duration)
