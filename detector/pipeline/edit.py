"""Write tuned scoring parameters back into a pipeline file, touching nothing else.

Tuning (``detector tune``, a notebook) ends with a metric's new ``model``, ``sensitivity`` and
``params``. People keep comments, key order and line breaks in their pipeline files, so the
file is *edited*, not re-dumped: the YAML is composed with PyYAML (the parser the loader
uses), whose nodes carry the exact character range of every scalar, and only those ranges
change: a value replaced in place (its inline comment stays), a key added on its own line
after the metric's last line, or into a flow mapping before its ``}``. A round-trip dumper
(ruamel.yaml) was tried and re-indents sequences, moves comments and joins multi-line flow
mappings of ``pipelines/shop.yaml``, which is exactly what must not happen.

Every result is checked twice: the new document must equal the old one with the requested
values set (nothing else moved), and it must pass :func:`parse_pipeline`, or a
:class:`~detector.errors.ConfigError` is raised and nothing is written.

>>> text = '''name: shop
... metrics:
...   - name: orders      # per market
...     event: order_placed
...     aggregation: count
...     sensitivity: 2.0  # too jumpy?
... '''
>>> new = set_metric_params(text, "orders", {"sensitivity": 0.8, "min_duration": 3})
>>> print(new)
name: shop
metrics:
  - name: orders      # per market
    event: order_placed
    aggregation: count
    sensitivity: 0.8  # too jumpy?
    params: {min_duration: 3}
<BLANKLINE>
>>> print(diff(text, new, "shop.yaml"))
--- shop.yaml
+++ shop.yaml
@@ -3,4 +3,5 @@
   - name: orders      # per market
     event: order_placed
     aggregation: count
-    sensitivity: 2.0  # too jumpy?
+    sensitivity: 0.8  # too jumpy?
+    params: {min_duration: 3}
<BLANKLINE>
"""

from __future__ import annotations

import difflib
import json
import math
import re
from typing import Any

import yaml

from detector.errors import ConfigError
from detector.pipeline.config import _suggest, parse_pipeline

__all__ = ["diff", "set_metric_params"]

#: Keys of a metric that tuning sets directly; every other key goes under its ``params:``.
METRIC_KEYS = ("model", "sensitivity")


def set_metric_params(
    text: str, metric: str, params: dict[str, Any], *, source: str = "<string>"
) -> str:
    """Return ``text`` with ``metric``'s ``model``, ``sensitivity`` and ``params`` set.

    ``params`` holds ``model`` and ``sensitivity`` (set on the metric) and any model or
    detection parameter such as ``min_duration`` or ``min_change`` (set under its ``params:``);
    a nested ``{"params": {...}}``, the shape of a metric, is accepted too. A value the metric
    already has (itself or through ``defaults:``) is left alone, so an unchanged pipeline comes
    back byte for byte. Raises :class:`~detector.errors.ConfigError` for an unknown metric, a
    value YAML cannot hold, or a result that does not validate (the message names ``source``).

    >>> set_metric_params("name: x\\nmetrics: [{name: a, event: e, aggregation: count}]\\n",
    ...                   "a", {"model": "profile"})
    'name: x\\nmetrics: [{name: a, event: e, aggregation: count, model: profile}]\\n'
    >>> set_metric_params("name: x\\nmetrics: [{name: orders, event: e, aggregation: count}]",
    ...                   "order", {})
    Traceback (most recent call last):
    ...
    detector.errors.ConfigError: <string>: metrics: no metric named 'order'; did you mean ...
    """
    wanted = _flatten(params, source)
    pipeline = parse_pipeline(text, source=source)  # the input must be valid to start with
    names = [m.name for m in pipeline.metrics]
    if metric not in names:
        raise ConfigError(
            f"{source}: metrics: no metric named {metric!r}{_suggest(metric, names)} "
            f"(metrics: {', '.join(names)})"
        )
    current = pipeline.metrics[names.index(metric)]
    effective = {"model": current.model, "sensitivity": current.sensitivity, **current.params}
    changes = {k: v for k, v in wanted.items() if not _same(effective.get(k, _UNSET), v)}
    if not changes:
        return text
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    node = _metric_node(root, metric)
    edits = _plan(text, node, changes, source)
    new = text
    # From the end backwards, so earlier offsets stay valid; of two insertions at one place
    # (a block `params:` that ends the metric), the one planned later lands later in the text.
    for _, (start, end, replacement) in sorted(enumerate(edits), key=lambda e: (e[1][0], e[0]))[
        ::-1
    ]:
        new = new[:start] + replacement + new[end:]
    _check(text, new, metric, changes, source)
    return new


def diff(old: str, new: str, path: str) -> str:
    """The unified diff from ``old`` to ``new`` (empty when equal), for ``patch -p0``.

    >>> print(diff("a: 1\\nb: 2\\n", "a: 1\\nb: 3\\n", "p.yaml"))
    --- p.yaml
    +++ p.yaml
    @@ -1,2 +1,2 @@
     a: 1
    -b: 2
    +b: 3
    <BLANKLINE>
    """
    lines = []
    for line in difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), path, path
    ):
        lines.append(line)
        if not line.endswith("\n"):  # the file's last line has no newline
            lines.append("\n\\ No newline at end of file\n")
    return "".join(lines)


# --------------------------------------------------------------------------------------------

_UNSET = object()
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")


def _flatten(params: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "params":
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: 'params' must be a mapping, got {value!r}")
            out.update({str(k): _plain(k, v, source) for k, v in value.items()})
        else:
            out[str(key)] = _plain(key, value, source)
    return out


def _plain(key: Any, value: Any, source: str) -> Any:
    """``value`` as a plain Python value YAML can hold (numpy scalars come from tuning)."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_plain(key, v, source) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: parameter {key!r} must be a finite number, got {value!r}")
    if value is None or not isinstance(value, str | int | float | bool | list):
        raise ConfigError(
            f"{source}: parameter {key!r} must be a string, number, boolean or list, got {value!r}"
        )
    return value


def _same(a: Any, b: Any) -> bool:
    if a is _UNSET or type(a) is bool or type(b) is bool:
        return a is not _UNSET and a is b
    return bool(a == b)


def _scalar(value: Any) -> str:
    """YAML text for a value, read back as the same value by the pipeline loader."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:  # YAML 1.1 needs 1.0e-05, not 1e-05
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, str) and _PLAIN.match(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)  # JSON strings and numbers are valid YAML flow scalars


def _metric_node(root: yaml.Node, metric: str) -> yaml.MappingNode:
    for key, value in root.value:
        if key.value == "metrics" and isinstance(value, yaml.SequenceNode):
            for item in value.value:
                for k, v in getattr(item, "value", []):
                    if k.value == "name" and v.value == metric:
                        return item
    raise AssertionError("a validated pipeline has the metric")  # pragma: no cover


def _get(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    return next(((k, v) for k, v in node.value if k.value == key), None)


def _last_offset(node: yaml.Node) -> int:
    """Character offset just after the last scalar or flow collection inside ``node``.

    PyYAML ends a *block* collection where the next token starts (past comments and blank
    lines), so the end of a block is found from what it contains.
    """
    if isinstance(node, yaml.ScalarNode) or node.flow_style:
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            return node.end_mark.index - 1  # a block scalar ends at the next line's start
        return node.end_mark.index
    children = node.value if isinstance(node, yaml.SequenceNode) else sum(node.value, ())
    return max((_last_offset(c) for c in children), default=node.start_mark.index)


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end < 0 else end


def _add_to_mapping(text: str, node: yaml.MappingNode, pairs: list[str]) -> tuple[int, int, str]:
    """The edit that appends ``key: value`` pairs to a mapping, in its own style."""
    if node.flow_style:
        close = node.end_mark.index - 1  # the closing brace
        sep = ", " if node.value else ""
        return close, close, sep + ", ".join(pairs)
    indent = " " * node.value[0][0].start_mark.column
    at = _line_end(text, _last_offset(node))
    return at, at, "".join(f"\n{indent}{p}" for p in pairs)


def _plan(
    text: str, node: yaml.MappingNode, changes: dict[str, Any], source: str
) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    new_keys: list[str] = []

    def replace(value_node: yaml.Node, value: Any) -> None:
        if not isinstance(value_node, yaml.ScalarNode) and not isinstance(value, list):
            raise ConfigError(f"{source}: cannot replace a {value_node.tag} with {value!r}")
        edits.append((value_node.start_mark.index, value_node.end_mark.index, _scalar(value)))

    for key in METRIC_KEYS:
        if key in changes:
            found = _get(node, key)
            if found:
                replace(found[1], changes[key])
            else:
                new_keys.append(f"{key}: {_scalar(changes[key])}")
    rest = {k: v for k, v in changes.items() if k not in METRIC_KEYS}
    if rest:
        found = _get(node, "params")
        if found is None:
            inner = ", ".join(f"{k}: {_scalar(v)}" for k, v in rest.items())
            new_keys.append(f"params: {{{inner}}}")
        elif not isinstance(found[1], yaml.MappingNode):
            raise ConfigError(f"{source}: the metric's 'params' is not a mapping")
        else:
            add = []
            for key, value in rest.items():
                inner_found = _get(found[1], key)
                if inner_found:
                    replace(inner_found[1], value)
                else:
                    add.append(f"{key}: {_scalar(value)}")
            if add and not found[1].value:  # `params: {}`
                at = found[1].start_mark.index
                edits.append((at, found[1].end_mark.index, "{" + ", ".join(add) + "}"))
            elif add:
                edits.append(_add_to_mapping(text, found[1], add))
    if new_keys:
        edits.append(_add_to_mapping(text, node, new_keys))
    return edits


def _check(old: str, new: str, metric: str, changes: dict[str, Any], source: str) -> None:
    """The new text validates, and differs from the old only by ``changes``."""
    parse_pipeline(new, source=source)  # a PipelineError lists what is wrong, with lines
    expected = _unshared(yaml.safe_load(old))
    for m in expected["metrics"]:
        if m.get("name") == metric:
            for key, value in changes.items():
                target = m if key in METRIC_KEYS else m.setdefault("params", {})
                target[key] = value
    if _unshared(yaml.safe_load(new)) != expected:  # e.g. a `params:` shared through a YAML anchor
        raise ConfigError(
            f"{source}: cannot edit metric {metric!r} in place without changing something else "
            "(is its 'params' a YAML alias?); set the values by hand"
        )


def _unshared(doc: Any) -> Any:
    """A copy in which a YAML alias is a copy of its anchor, not the same object."""
    return json.loads(json.dumps(doc, default=str))
