"""YAML loading that remembers where every key and value came from.

``load_yaml`` composes the document (libyaml's C parser when available), then builds the plain
Python data while recording the start of every key and value node under its path
(``("tasks", 1, "message")``). Validation maps an error's path back to a line and column with
``Positions.key`` / ``Positions.value``, falling back to the nearest enclosing node.

Two departures from PyYAML's safe loader, both to read flows the way Kestra does: plain scalars
are typed as in YAML 1.2 (``no``, ``on``, ``2024-01-15`` and ``10:30`` stay strings; a field
typed as a date or a duration parses them itself), and a key repeated in one mapping is
reported instead of silently overwriting the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from kray.errors import FlowValidationError, Issue

Path = tuple[Any, ...]
Pos = tuple[int, int]  # 1-based line, column

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


class FlowLoader(_BaseLoader):  # type: ignore[misc]
    """A safe loader that types plain scalars the way YAML 1.2 (and Kestra) does."""


# Plain scalars that are not strings. Unlike PyYAML's YAML 1.1 rules: yes/no/on/off, 010
# (octal), 10:30 (base 60) and 2024-01-15 (a timestamp) stay strings, so ``message: no`` logs
# "no" and a TIME default of 10:30 means half past ten.
_PLAIN_TYPES = (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|0o[0-7_]+", "-+0123456789"),
    ("float", r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
     "-+0123456789."),
    ("null", r"~|null|Null|NULL|", ("~", "n", "N", "")),
    ("merge", r"<<", "<"),
)
FlowLoader.yaml_implicit_resolvers = {}
for _kind, _pattern, _first in _PLAIN_TYPES:
    FlowLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_kind}",
                                     re.compile(f"^(?:{_pattern})$"), list(_first))
del _kind, _pattern, _first


def format_path(path: Path) -> str:
    """``("tasks", 1, "retry", "maxAttempt")`` -> ``tasks[1].retry.maxAttempt``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Positions:
    """Start positions of the key and the value of every node, by path."""

    keys: dict[Path, Pos] = field(default_factory=dict)
    values: dict[Path, Pos] = field(default_factory=dict)

    def key(self, path: Path) -> Pos | None:
        """Where the key of ``path`` starts (a list item: where the item starts); else the
        nearest enclosing node that exists."""
        for i in range(len(path), -1, -1):
            pos = self.keys.get(path[:i])
            if pos is not None:
                return pos
        return None

    def value(self, path: Path) -> Pos | None:
        """Where the value of ``path`` starts; else as ``key``."""
        pos = self.values.get(path)
        return pos if pos is not None else self.key(path)


@dataclass
class LoadedYaml:
    data: Any
    positions: Positions
    issues: list[Issue]  # non-fatal problems found while loading (repeated keys)


def _pos(node: yaml.Node) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Builds the data from the composed node graph and records positions, in one pass.

    Plain mappings, sequences and strings are built here; every other node (numbers, booleans,
    null, explicit tags) goes through the safe constructor. A node reached again through an
    alias is not walked again: the same object is reused, as PyYAML does, so an alias bomb
    costs nothing and positions below an alias fall back to the alias itself.
    """

    def __init__(self, loader: Any, file: str | None) -> None:
        self.loader = loader
        self.file = file
        self.positions = Positions()
        self.issues: list[Issue] = []
        self._built: dict[int, Any] = {}

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.positions.values[path] = _pos(node)
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR_TAG else self.loader.construct_object(node)
        built = self._built.get(id(node))
        if built is not None:
            return built
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
            items: list[Any] = []
            self._built[id(node)] = items
            for i, item in enumerate(node.value):
                self.positions.keys[(*path, i)] = _pos(item)
                items.append(self.build(item, (*path, i)))
            return items
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
            mapping: dict[Any, Any] = {}
            self._built[id(node)] = mapping
            self._mapping(node, path, mapping)
            return mapping
        return self.loader.construct_object(node, deep=True)  # !!set, !!omap, !!binary...

    def _key(self, key_node: yaml.Node, node: yaml.Node) -> Any:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR_TAG:
            return key_node.value
        key = self.loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConstructorError("while constructing a mapping", node.start_mark,
                                   "found unhashable key", key_node.start_mark) from None
        return key

    def _mapping(self, node: yaml.MappingNode, path: Path, out: dict[Any, Any]) -> None:
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self._key(key_node, node)
            if key in out:
                line, col = _pos(key_node)
                self.issues.append(Issue(f"duplicate key '{key}'", format_path((*path, key)),
                                         self.file, line, col))
            self.positions.keys[(*path, key)] = _pos(key_node)
            out[key] = self.build(value_node, (*path, key))
        if merges:
            self._merge(node, path, out, merges)

    def _merge(self, node: yaml.MappingNode, path: Path, out: dict[Any, Any],
               merges: list[yaml.Node]) -> None:
        """``<<: *anchor`` (or a list of anchors): the mapping's own keys win, then the earlier
        source wins; merged keys come first, as in PyYAML. Their positions are the anchor's."""
        merged: dict[Any, Any] = {}
        for value_node in merges:
            sources = (value_node.value if isinstance(value_node, yaml.SequenceNode)
                       else [value_node])
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise ConstructorError("while constructing a mapping", node.start_mark,
                                           f"expected a mapping for merging, but found "
                                           f"{getattr(source, 'id', 'a node')}", source.start_mark)
                data = self.build(source, (*path, "<<"))
                for key_node, sub in source.value:
                    if key_node.tag == _MERGE_TAG:
                        continue
                    key = self._key(key_node, source)
                    if key not in out and key not in merged:
                        self.positions.keys[(*path, key)] = _pos(key_node)
                        self.positions.values[(*path, key)] = _pos(sub)
                if isinstance(data, dict):
                    for key, value in data.items():
                        if key not in out:
                            merged.setdefault(key, value)
        own = dict(out)
        out.clear()
        out.update(merged)
        out.update(own)


def load_yaml(source: str, file: str | None = None) -> LoadedYaml:
    """Parse one YAML document. A syntax error raises ``FlowValidationError`` with one issue
    located at the error's mark; an empty document loads as ``None``."""
    loader = FlowLoader(source)
    try:
        node = loader.get_single_node()
        if node is None:
            return LoadedYaml(None, Positions(), [])
        builder = _Builder(loader, file)
        data = builder.build(node, ())
        builder.positions.keys[()] = _pos(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = "invalid YAML: " + (exc.problem or exc.context or "syntax error")
        if exc.context and exc.problem:
            message += f" ({exc.context})"
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise FlowValidationError([Issue(message, "", file, line, col)]) from None
    except yaml.YAMLError as exc:
        raise FlowValidationError([Issue(f"invalid YAML: {exc}", "", file)]) from None
    finally:
        loader.dispose()
    return LoadedYaml(data, builder.positions, builder.issues)
