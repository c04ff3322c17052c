"""YAML loading that remembers where every value came from.

Users fix problems faster when a message points at ``file:line``; PyYAML's node marks have the
lines, so documents are built from the node tree while recording the line of each key path
(``alerts.high-error-ratio.threshold``, ``custom_alerts[0].expr``). Duplicate keys, which PyYAML
silently collapses, are reported as problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from platform_obs.provisioning import limits
from platform_obs.provisioning.model import Problem

# libyaml's parser (inside PyYAML's wheels) composes ~15x faster than the pure-Python one and its
# nodes keep their marks, so line numbers survive; the pure-Python loader is only a fallback.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """Safe loader; a subclass so nothing we do leaks into PyYAML's global resolver tables."""


class _PyLoader(yaml.SafeLoader):
    """The pure-Python loader: a file libyaml rejects is read again with it, so the messages
    about broken files stay the same whichever parser found the problem."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # Stop at a limit instead of reading on: the pure-Python scanner is quadratic in the
        # nesting depth, its composer recursive, and each value costs tens of microseconds.
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > limits.MAX_DEPTH + 1:
                line = self.peek_event().start_mark.line + 1
                raise limits.LimitExceeded(f"nested deeper than {limits.MAX_DEPTH} levels", line)
            if self._nodes > limits.MAX_NODES:
                line = self.peek_event().start_mark.line + 1
                raise limits.LimitExceeded(limits.too_many_values(), line)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


def join(path: str, key: str | int) -> str:
    """Extend a key path: ``join("a", "b") == "a.b"``, ``join("a", 0) == "a[0]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


@dataclass
class Located:
    """A parsed YAML document plus the 1-based line of each key path."""

    file: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: str) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""

    def problem(self, path: str, message: str, value: Any = None, expected: str = "") -> Problem:
        return Problem(self.file, path, message, value, expected, self.line(path))


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: str, doc: Located) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<:` merge keys
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                doc.problems.append(
                    Problem(
                        doc.file,
                        path,
                        "mapping key must be a scalar",
                        str(key),
                        "a plain key",
                        key_node.start_mark.line + 1,
                    )
                )
                continue
            child = join(path, str(key))
            if key in out:
                doc.problems.append(
                    Problem(
                        doc.file,
                        child,
                        "duplicate key (YAML keeps only the last one)",
                        key,
                        "each key once",
                        key_node.start_mark.line + 1,
                    )
                )
            doc.lines[child] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, child, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, join(path, i), doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse(text: str, file: str) -> Located:
    """Parse one YAML document; syntax errors and inputs over the limits become problems (data is
    then ``None``)."""
    doc = _parse(text, file, _Loader)
    if doc.problems and _Base is not yaml.SafeLoader:
        return _parse(text, file, _PyLoader)
    return doc


def _parse(text: str, file: str, loader_class: type[yaml.SafeLoader]) -> Located:
    doc = Located(file, None)
    loader = None
    try:
        limits.check_text(text)
        loader = loader_class(text)  # the reader refuses NUL and other unprintable characters here
        node = loader.get_single_node()
        if node is not None:
            limits.check_tree(node)  # before _build, which would expand aliases without end
            doc.data = _build(loader, node, "", doc)
    except limits.LimitExceeded as exc:
        doc.problems.append(Problem(file, "", str(exc), None, "", exc.line))
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        doc.problems.append(
            Problem(file, "", f"nested deeper than {limits.MAX_DEPTH} levels", None, "", None)
        )
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        doc.problems.append(
            Problem(
                file,
                "",
                f"invalid YAML: character U+{exc.character:04X} is not allowed in YAML text",
                None,
                "printable UTF-8 text",
                line,
            )
        )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        doc.problems.append(
            Problem(
                file,
                "",
                f"invalid YAML: {exc.problem or exc}",
                None,
                "a single valid YAML document",
                mark.line + 1 if mark else None,
            )
        )
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(file, "", f"invalid YAML: {exc}"))
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        doc.problems.append(Problem(file, "", f"invalid YAML value: {str(exc).split(';')[0]}"))
    finally:
        if loader is not None:
            loader.dispose()
    return doc


def load(path: Path) -> Located:
    """Read and parse a YAML file; an unreadable or oversized file is a problem, not an exception."""
    try:
        text = limits.read_text(path)
    except limits.LimitExceeded as exc:
        return Located(str(path), None, problems=[Problem(str(path), "", str(exc))])
    except (OSError, UnicodeDecodeError) as exc:
        return Located(
            str(path), None, problems=[Problem(str(path), "", f"cannot read file: {exc}")]
        )
    return parse(text, str(path))
