"""Typed field access over a located YAML document, collecting problems instead of raising.

Templates are data edited by hand; each mistake should come back as one precise problem and
parsing should carry on, so an author sees everything wrong in a file at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from platform_obs.provisioning.model import Problem
from platform_obs.provisioning.placeholders import did_you_mean
from platform_obs.provisioning.yamlsrc import Located, join

_MISSING = object()


class Reader:
    def __init__(self, doc: Located) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str, value: Any = None, expected: str = "") -> None:
        self.problems.append(self.doc.problem(path, message, value, expected))

    def mapping(
        self, value: Any, path: str, allowed: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``value`` as a mapping; with ``allowed`` keys, unknown keys are problems."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, "must be a mapping", value, "key: value pairs")
            return {}
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.problem(
                        join(path, str(key)),
                        f"unknown key {key!r}{did_you_mean(str(key), allowed)}",
                        key,
                        "one of " + ", ".join(allowed),
                    )
        return value

    def get(
        self,
        obj: Mapping[str, Any],
        path: str,
        key: str,
        types: type | tuple[type, ...],
        default: Any = _MISSING,
        expected: str = "",
    ) -> Any:
        """``obj[key]`` checked against ``types``; missing without default is a problem."""
        where = join(path, key)
        if key not in obj or obj[key] is None:
            if default is _MISSING:
                self.problem(where, "required key is missing", None, expected or _name(types))
                return None
            return default
        value = obj[key]
        # bool is an int subclass: a `true` is never an acceptable number.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            self.problem(
                where, f"wrong type ({type(value).__name__})", value, expected or _name(types)
            )
            return None if default is _MISSING else default
        return value

    def sequence(self, obj: Mapping[str, Any], path: str, key: str) -> list[Any]:
        value = self.get(obj, path, key, list, default=[], expected="a list")
        return value if isinstance(value, list) else []


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _name(types: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a mapping",
    }
    return " or ".join(names.get(t, t.__name__) for t in _tuple(types))
