"""orders-api: a FastAPI service on uvicorn, instrumented by ``platform_obs.init()`` alone.

    uvicorn --app-dir examples/fastapi_service app:app --workers 2 --port 8000

Routes: ``GET /orders/{order_id}`` (``?fail=1`` raises an unhandled exception: HTTP 500, reported once
as a structured error with the request's trace id; ``?delay_ms=N`` answers late), ``POST /orders``
(JSON ``{"amount": 12.5}``), ``GET /healthz`` (excluded from traces and metrics by default).
"""

from __future__ import annotations

import asyncio
import itertools
import os

import platform_obs

# First, before the app exists: FastAPI is instrumented when it is imported. The environment comes
# from PLATFORM_OBS_ENVIRONMENT (or OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=...).
platform_obs.init(service_name=os.environ.get("SERVICE_NAME", "orders-api"))

from fastapi import FastAPI, HTTPException  # noqa: E402
from pydantic import BaseModel  # noqa: E402

log = platform_obs.get_logger(__name__)
app = FastAPI(title="orders-api")
_ids = itertools.count(1000)


class Order(BaseModel):
    amount: float


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/orders/{order_id}")
async def get_order(order_id: int, fail: int = 0, delay_ms: int = 0) -> dict[str, float | int]:
    if delay_ms > 0:
        await asyncio.sleep(min(delay_ms, 10_000) / 1000)
    if fail:
        # Not caught anywhere: the server answers 500 and the SDK logs it once, with the trace id.
        raise RuntimeError(f"injected failure for order {order_id}")
    amount = round(5 + (order_id % 97) * 1.25, 2)
    log.info("order fetched", order_id=order_id, amount=amount)
    return {"order_id": order_id, "amount": amount}


@app.post("/orders", status_code=201)
async def place_order(order: Order) -> dict[str, float | int]:
    if order.amount <= 0:
        log.warning("order rejected", reason="amount must be positive")
        raise HTTPException(status_code=400, detail="amount must be positive")
    order_id = next(_ids)
    log.info("order placed", order_id=order_id, amount=order.amount)
    return {"order_id": order_id, "amount": order.amount}
