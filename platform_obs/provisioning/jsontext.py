"""JSON text through orjson: a fleet's dashboards are ~100 MB of JSON, and the standard library's
encoder and decoder were a third of a command's time.

Same data model as :mod:`json` for what the provisioner handles (str keys, str/int/float/bool/None,
lists, tuples, dicts); floats are written in their shortest form (``1e-06`` becomes ``1e-6``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

loads = orjson.loads


def dumps(data: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON (no spaces), non-ASCII kept as is."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()


def pretty(data: Any) -> str:
    """Sorted keys, two-space indent and a final newline: stable files for GitOps diffs."""
    return (orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n").decode()


#: The rest of a JSON string up to its closing quote.
_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*"')


def in_a_key(text: str, word: str) -> bool:
    """Whether ``word`` occurs inside a mapping key of compact JSON ``text`` (a key's closing
    quote is followed by ``:``, a value's by ``,``, ``}`` or ``]``)."""
    at = text.find(word)
    while at >= 0:
        rest = _STRING_REST.match(text, at)
        if rest is None or text.startswith(":", rest.end()):
            return True
        at = text.find(word, rest.end())
    return False
