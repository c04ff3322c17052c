"""How the metrics backend labels series: one platform-level setting, applied to every query.

``promoted`` (the default): the platform's resource attributes are labels of every series
(``conventions.PROMOTED_RESOURCE_ATTRIBUTES``: the Collector's transform, Prometheus 3 / Mimir with
``otlp.promote_resource_attributes``, the SDK's pull endpoint). Templates select on them directly.

``target_info``: the backend keeps only ``job`` (``service.namespace/service.name``) and
``instance`` (``service.instance.id``) on each series and every other resource attribute on
``target_info`` - what OTLP ingestion does when nothing is promoted. The service is then selected
by ``job``, and the environment (a filter and a grouping label of the templates) comes from
``target_info``: every range function over, and every instant vector selector of, the service's
series is joined with it::

    rate(x{job="shop/checkout"}[5m])
    -> (rate(x{job="shop/checkout"}[5m])
        * on (job, instance) group_left (deployment_environment_name)
        target_info{job="shop/checkout", deployment_environment_name=~"production|staging"})

Templates stay as they are: ``${selector}`` expands to the ``job`` matcher and the join is added
to the expanded query by :func:`apply`, which finds the service's selectors with a small PromQL
tokenizer (strings, brackets) rather than pattern matching. ``absent*`` calls are left unjoined:
a series that is absent has no ``instance`` to join on. Recorded series (``level:metric:ops``
names) are not joined: their recording rule joined already and labels them with the ``job``; they
get the environment filter as a matcher of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from platform_obs import conventions

PROMOTED: Final = "promoted"
TARGET_INFO: Final = "target_info"
SCHEMES: Final = (PROMOTED, TARGET_INFO)
#: Series-identifying labels OTLP ingestion derives from the resource (never promoted).
JOB, INSTANCE = "job", "instance"
TARGET_INFO_METRIC: Final = "target_info"
#: Labels the join copies from target_info: what templates filter and group on besides the service.
JOINED_LABELS: Final[tuple[str, ...]] = tuple(
    conventions.prom_label(a)
    for a in conventions.PROMOTED_RESOURCE_ATTRIBUTES
    if a not in (conventions.SERVICE_NAME, conventions.SERVICE_NAMESPACE)
)
_NO_JOIN = ("absent", "absent_over_time")


def job_value(service: str, namespace: str | None) -> str:
    """``job`` as OTLP ingestion sets it: ``service.namespace/service.name`` or the bare name."""
    return f"{namespace}/{service}" if namespace else service


@dataclass(frozen=True)
class Join:
    """What :func:`apply` needs: the ``job`` matcher text and the target_info filter."""

    job_matcher: str
    info_matchers: str

    def clause(self) -> str:
        labels = ", ".join(JOINED_LABELS)
        return (
            f"* on ({JOB}, {INSTANCE}) group_left ({labels}) "
            f"{TARGET_INFO_METRIC}{{{self.job_matcher}, {self.info_matchers}}}"
        )


def _string_mask(expr: str) -> list[bool]:
    """True for each character inside a PromQL string literal (quotes included)."""
    mask = [False] * len(expr)
    quote: str | None = None
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            mask[i] = True
            if c == "\\" and quote != "`":
                if i + 1 < len(expr):
                    mask[i + 1] = True
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
            mask[i] = True
        i += 1
    return mask


def _close(expr: str, mask: Sequence[bool], start: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at ``start``."""
    depth = 0
    for i in range(start, len(expr)):
        if mask[i]:
            continue
        if expr[i] == open_:
            depth += 1
        elif expr[i] == close:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {open_!r} at {start} in {expr!r}")


def _enclosing_call(expr: str, mask: Sequence[bool], inside: int) -> tuple[int, str]:
    """(start, function name) of the call whose parentheses enclose position ``inside``."""
    depth = 0
    for i in range(inside - 1, -1, -1):
        if mask[i]:
            continue
        if expr[i] == ")":
            depth += 1
        elif expr[i] == "(":
            if depth == 0:
                j = i
                while j > 0 and (expr[j - 1].isalnum() or expr[j - 1] == "_"):
                    j -= 1
                return j, expr[j:i]
            depth -= 1
    raise ValueError(f"range vector outside a function call in {expr!r}")


def apply(expr: str, join: Join) -> str:
    """``expr`` with every selection of the service's series joined with target_info."""
    clause = join.clause()
    out = expr
    search_from = 0
    while True:
        mask = _string_mask(out)
        at = _find_selector(out, mask, join.job_matcher, search_from)
        if at < 0:
            return out
        close = _close(out, mask, at, "{", "}")
        name_start = at
        while name_start > 0 and (out[name_start - 1].isalnum() or out[name_start - 1] in "_:"):
            name_start -= 1
        if ":" in out[name_start:at]:
            # A recorded series (level:metric:ops): its recording rule joined already, so the
            # environment is its own label - filter on it instead of joining.
            extra = f", {join.info_matchers}"
            out = out[:close] + extra + out[close:]
            search_from = close + len(extra) + 1
            continue
        after = close + 1
        while after < len(out) and out[after] == " ":
            after += 1
        if after < len(out) and out[after] == "[":  # a range vector: join the function's result
            start, name = _enclosing_call(out, mask, at)
            end = _close(out, mask, start + len(name), "(", ")")
        else:  # an instant vector selector: join the selector itself
            start = at
            while start > 0 and (out[start - 1].isalnum() or out[start - 1] in "_:"):
                start -= 1
            name, end = "", close
        if name in _NO_JOIN:
            search_from = end + 1
            continue
        wrapped = f"({out[start : end + 1]} {clause})"
        out = out[:start] + wrapped + out[end + 1 :]
        search_from = start + len(wrapped)


def _find_selector(expr: str, mask: Sequence[bool], job_matcher: str, start: int) -> int:
    """Index of the next ``{`` whose matchers begin with the service's ``job`` matcher."""
    i = expr.find("{" + job_matcher, start)
    while i >= 0 and mask[i]:
        i = expr.find("{" + job_matcher, i + 1)
    # The target_info selector of an inserted join also starts with the matcher: skip it.
    while i >= 0 and expr[max(0, i - len(TARGET_INFO_METRIC)) : i] == TARGET_INFO_METRIC:
        i = expr.find("{" + job_matcher, i + 1)
    return i
