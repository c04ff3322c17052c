"""mailer: a Celery worker instrumented by ``platform_obs.init()`` alone, no broker server needed.

    celery --workdir examples/celery_worker -A tasks worker --concurrency 2 --loglevel INFO
    python examples/celery_worker/tasks.py 12      # enqueue 12 tasks (every 4th fails)

Messages go through kombu's filesystem transport in ``$CELERY_DATA_DIR`` (default ``.celery-data``):
a real worker runs real tasks, with nothing else to start. Point ``CELERY_BROKER_URL`` at Redis or
RabbitMQ in production; nothing else changes. Celery's own settings are not touched: the SDK tells
Celery that logging is taken care of, so task lines are neither swallowed nor exported twice.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from celery import Celery

import platform_obs

platform_obs.init(service_name=os.environ.get("SERVICE_NAME", "mailer"))

log = platform_obs.get_logger(__name__)
_data = Path(os.environ.get("CELERY_DATA_DIR") or ".celery-data").resolve()
for folder in ("queue", "processed"):
    (_data / folder).mkdir(parents=True, exist_ok=True)

app = Celery("mailer", broker=os.environ.get("CELERY_BROKER_URL") or "filesystem://")
app.conf.update(
    broker_transport_options={
        "data_folder_in": str(_data / "queue"),
        "data_folder_out": str(_data / "queue"),
        "processed_folder": str(_data / "processed"),
        "polling_interval": 0.1,
    },
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


class DeliveryFailed(RuntimeError):
    """Raised by ``send_welcome`` for the messages a test asks to fail."""


@app.task(name="mailer.send_welcome")
def send_welcome(user_id: int, fail: bool = False) -> str:
    log.info("sending welcome mail", user_id=user_id)
    time.sleep(0.05)
    if fail:
        raise DeliveryFailed(f"mailbox of user {user_id} is full")
    return f"sent to {user_id}"


def enqueue(count: int) -> None:
    for user_id in range(count):
        send_welcome.delay(user_id, fail=user_id % 4 == 3)
    log.info("welcome mails queued", count=count)


if __name__ == "__main__":
    enqueue(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
    platform_obs.shutdown()
