"""A flow's ``pluginDefaults``: property values given once for every task of a type.

A default's ``type`` names a task exactly, or as a dotted prefix (``io.kestra.plugin.core.log``
covers ``io.kestra.plugin.core.log.Log``), and it may name the task's type as written or any
other name of its class (its kray name or an alias), so Kestra names and kray names are
interchangeable. Non-forced values fill the keys a task leaves out (dicts are merged key by
key, the most specific default winning); forced values override what the task says.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from kray.flow.children import known_keys
from kray.flow.model import PluginDefault
from kray.task import Task

_NEVER_DEFAULTED = ("id", "type")


def _rank(names: set[str], default_type: str) -> int:
    """How specifically ``default_type`` names a task: 0 not at all, odd for an exact name
    (it beats any prefix of the same length), even for a dotted prefix; longer is closer."""
    if default_type in names:
        return 2 * len(default_type) + 1
    prefix = default_type if default_type.endswith(".") else default_type + "."
    return 2 * len(default_type) if any(n.startswith(prefix) for n in names) else 0


def _fill(target: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(target[key], dict) and isinstance(value, Mapping):
            target[key] = dict(target[key])
            _fill(target[key], value)


def _force(target: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(target.get(key), dict) and isinstance(value, Mapping):
            target[key] = dict(target[key])
            _force(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def apply_plugin_defaults(raw: Mapping[str, Any], cls: type[Task], type_name: str,
                          defaults: Sequence[PluginDefault]) -> dict[str, Any]:
    """A copy of the raw task ``raw`` (of class ``cls``, written as ``type_name``) with the
    matching ``defaults`` applied. ``raw`` itself is left untouched.

    A default that matches only by prefix sets only the properties ``cls`` has, since it
    covers many types; an exact one sets all of its values, so a typo in it is reported.
    ``id`` and ``type`` are never defaulted.
    """
    data = dict(raw)
    names = {type_name, cls.type_name, *cls.aliases}
    ranked = [(rank, i, d) for i, d in enumerate(defaults) if (rank := _rank(names, d.type))]
    if not ranked:
        return data
    known = set(known_keys(cls)) | set(cls.model_fields)

    def values(rank: int, default: PluginDefault) -> dict[str, Any]:
        exact = rank % 2 == 1
        return {k: v for k, v in default.values.items()
                if k not in _NEVER_DEFAULTED and (exact or k in known)}

    # Non-forced: most specific first, so it fills first; the earlier of equals wins.
    for rank, _, default in sorted(ranked, key=lambda r: (-r[0], r[1])):
        if not default.forced:
            _fill(data, values(rank, default))
    # Forced: most specific last, so it overrides last; the earlier of equals wins.
    for rank, _, default in sorted(ranked, key=lambda r: (r[0], -r[1])):
        if default.forced:
            _force(data, values(rank, default))
    return data
