"""``GET /items/<id>`` (``?fail=1`` raises: Django answers 500 and logs it once with the trace id)."""

from django.http import HttpRequest, JsonResponse

import platform_obs

log = platform_obs.get_logger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    if request.GET.get("fail") == "1":
        raise RuntimeError(f"injected failure for item {item_id}")
    log.info("item fetched", item_id=item_id)
    return JsonResponse({"item_id": item_id, "stock": item_id % 7})
