"""How template values behave: undefined, printing, JSON, truthiness, and the per-render state.

Kept apart from the engine so that filters and the engine share one definition of "how a value
prints": the same text whether it is output with ``{{ }}``, concatenated with ``~`` or joined.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Set
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from jinja2.runtime import ChainableUndefined, Undefined

from kray.errors import TemplateError
from kray.templating.dates import iso

if TYPE_CHECKING:
    from kray.templating.engine import TemplateEngine, TemplateServices


class KrayUndefined(ChainableUndefined):
    """Pebble's strict variables, but chainable.

    ``outputs.missing.value`` is still an undefined (no error yet), so that ``is defined``,
    ``default`` and ``??`` can look at a whole chain. Using it in any other way (printing,
    iterating, comparing, arithmetic, truth value) raises, naming the first missing link.
    """

    __slots__ = ()
    __str__ = __iter__ = __len__ = __bool__ = Undefined._fail_with_undefined_error
    __eq__ = __ne__ = __hash__ = __contains__ = Undefined._fail_with_undefined_error

    def __repr__(self) -> str:
        return "Undefined"


class MapEntry(NamedTuple):
    """One entry of a map in a ``for`` loop: ``entry.key`` / ``entry.value`` (or ``k, v``)."""

    key: Any
    value: Any

    def __str__(self) -> str:
        return f"{stringify(self.key)}={stringify(self.value)}"


@dataclass
class RenderState:
    """What template functions need from the render in progress."""

    engine: TemplateEngine
    services: TemplateServices | None
    deadline: float | None
    depth: int = 0


CURRENT: ContextVar[RenderState | None] = ContextVar("kray_template_render", default=None)


def fail_if_undefined(value: Any) -> Any:
    """Raise the undefined error if ``value`` is undefined; else return it."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def check_defined(value: Any) -> None:
    """Raise if an undefined hides anywhere inside a list/dict result."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Undefined):
            item._fail_with_undefined_error()
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (datetime, date, time)):
        return iso(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (Set, tuple)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be written as JSON")


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (like Jackson): ``{"a":1}``, ``[1,2]``."""
    check_defined(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def stringify(value: Any) -> str:
    """How a value prints: true/false, '' for null, compact JSON for maps and lists, ISO dates."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, MapEntry):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return iso(value)
    if isinstance(value, (Mapping, list, tuple, Set)):
        return to_json(value)
    return str(value)


_FALSE_STRINGS = frozenset({"false", "0", "-0", ""})


def is_truthy(value: Any) -> bool:
    """Kestra's rule for ``If``/``runIf``/conditions: the value as it renders, trimmed and
    lower-cased, is false when it is ``false``, ``0``, ``-0`` or empty; anything else is true.

    So None, False, 0 and "" are false, and so are " FALSE " and "-0"; ``0.0``, ``[]`` and
    ``"no"`` are true (they render as ``0.0``, ``[]`` and ``no``)."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, Undefined):
        raise TemplateError(value._undefined_message)
    return stringify(value).strip().lower() not in _FALSE_STRINGS
