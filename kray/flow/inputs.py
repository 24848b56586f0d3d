"""Flow inputs: checking their declarations, and coercing an execution's raw values.

Raw values arrive as strings (CLI ``--input k=v``, multipart forms) or as native JSON values
(the API's JSON body, a subflow call). Each is coerced to its declared type and checked against
its rules; every problem is gathered into one ``InputValidationError``. The results are plain
JSON values, ready for the execution context. Input values are data, never templates.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kray.errors import InputValidationError, Issue
from kray.flow.model import Flow, Input

INPUT_TYPES: frozenset[str] = frozenset({
    "STRING", "INT", "FLOAT", "BOOLEAN", "BOOL", "DATETIME", "DATE", "TIME", "DURATION", "FILE",
    "JSON", "URI", "SECRET", "ARRAY", "SELECT", "MULTISELECT", "YAML", "EMAIL", "ENUM",
})
#: Types an ARRAY's ``itemType`` may name.
ITEM_TYPES: frozenset[str] = INPUT_TYPES - {"ARRAY", "FILE", "SELECT", "MULTISELECT", "ENUM"}
_CHOICE_TYPES = frozenset({"SELECT", "ENUM", "MULTISELECT"})

STORAGE_SCHEME = "kray://"
Uploader = Callable[[str, Path], str]


class InvalidInput(ValueError):
    """One broken rule; the message names the rule (``must be >= 18``)."""


@dataclass(frozen=True)
class PendingUpload:
    """A FILE input's local file, uploaded only once every input is valid."""

    path: Path


# -- durations -----------------------------------------------------------------------------------

_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?\d+)W)?(?:([-+]?\d+)D)?"
    r"(?:T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+(?:[.,]\d{0,9})?)S)?)?",
    re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration (``PT1H30M``, ``P2D``, ``PT0.5S``, ``-PT5M``) as a timedelta."""
    m = _DURATION.fullmatch(text.strip())
    if not m or not any(m.groups()[1:]) or text.strip().upper().endswith("T"):
        raise InvalidInput(f"must be an ISO-8601 duration like 'PT1H30M', got {text!r}")
    sign, weeks, days, hours, minutes, seconds = m.groups()
    td = timedelta(weeks=int(weeks or 0), days=int(days or 0), hours=int(hours or 0),
                   minutes=int(minutes or 0), seconds=float((seconds or "0").replace(",", ".")))
    return -td if sign == "-" else td


def format_duration(td: timedelta) -> str:
    """A timedelta as Java's ``Duration.toString`` writes it: ``PT1H30M``, ``PT48H``, ``PT0S``."""
    micros = (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds
    if micros == 0:
        return "PT0S"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    secs, frac = divmod(rest, 1_000_000)
    out = "PT"
    if hours:
        out += f"{sign}{hours}H"
    if minutes:
        out += f"{sign}{minutes}M"
    if secs or frac:
        out += f"{sign}{secs}" + (f".{frac:06d}".rstrip("0") if frac else "") + "S"
    return out


# -- scalar coercions ----------------------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InvalidInput("must be a string")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidInput("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InvalidInput(f"must be an integer, got {value!r}")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidInput("must be a number")
    try:
        result = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InvalidInput(f"must be a number, got {value!r}") from None
    if not math.isfinite(result):
        raise InvalidInput("must be a finite number")
    return result


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"must be true or false, got {value!r}")


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"must be an ISO-8601 date-time, got {value!r}") from None
    else:
        raise InvalidInput("must be an ISO-8601 date-time")
    return result if result.tzinfo else result.replace(tzinfo=UTC)


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(f"must be a date YYYY-MM-DD, got {value!r}")


def _time(value: Any) -> time:
    if isinstance(value, time):
        return value.replace(tzinfo=None, microsecond=0)
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip()).replace(tzinfo=None, microsecond=0)
        except ValueError:
            pass
    hint = " (quote it in YAML)" if isinstance(value, int) else ""
    raise InvalidInput(f"must be a time HH:MM[:SS], got {value!r}{hint}")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise InvalidInput(f"must be an ISO-8601 duration like 'PT1H30M', got {value!r}")


def _jsonable(value: Any) -> Any:
    """Plain JSON data; dates (from YAML) become ISO strings, anything else is refused."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput("must not contain NaN or infinity")
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    raise InvalidInput(f"must be JSON data, got a {type(value).__name__}")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidInput(f"must be valid JSON: {exc}") from None
    return _jsonable(value)


def _yaml(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"must be valid YAML: {exc}".replace("\n", " ")) from None
    return _jsonable(value)


def _list(value: Any, what: str) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput(f"must be {what}, got {value!r}") from None
    if not isinstance(value, (list, tuple)):
        raise InvalidInput(f"must be {what}")
    return list(value)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _email(value: Any) -> str:
    text = _text(value).strip()
    if not _EMAIL.fullmatch(text):
        raise InvalidInput(f"must be an email address, got {text!r}")
    return text


def _uri(value: Any) -> str:
    text = _text(value).strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or any(c.isspace() for c in text) or not (
            parts.netloc or parts.path):
        raise InvalidInput(f"must be an absolute URI like 'https://host/path', got {text!r}")
    return text


# -- per-type rules ------------------------------------------------------------------------------

def choices(inp: Input) -> list[str] | None:
    """The allowed values of a SELECT/MULTISELECT as strings; None when not checkable (an
    expression, rendered by the server)."""
    values: Any = inp.values if inp.values is not None else inp.options
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError:
            return None
    if not isinstance(values, list):
        return None
    return [v if isinstance(v, str) else json.dumps(v) for v in values]


def _scalar_choice(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise InvalidInput("must be a single value")


def _select(inp: Input, value: Any) -> str:
    text = _scalar_choice(value)
    allowed = choices(inp)
    if allowed is not None and not inp.allow_custom_value and text not in allowed:
        raise InvalidInput(f"must be one of [{', '.join(allowed)}]")
    return text


def _multiselect(inp: Input, value: Any) -> list[str]:
    allowed = choices(inp)
    if isinstance(value, str) and not value.lstrip().startswith("["):
        # CLI convenience: one of the values, or a comma-separated list of them.
        items: list[Any] = [value] if allowed and value in allowed else [
            v.strip() for v in value.split(",") if v.strip()]
    else:
        items = _list(value, "a list of values")
    texts = [_scalar_choice(v) for v in items]
    if allowed is not None and not inp.allow_custom_value:
        bad = [t for t in texts if t not in allowed]
        if bad:
            raise InvalidInput(f"must be a subset of [{', '.join(allowed)}]; "
                               f"not allowed: {', '.join(bad)}")
    return texts


def _file(inp: Input, value: Any) -> str | PendingUpload:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be a storage URI or a local file path")
    if value.startswith(STORAGE_SCHEME):
        return value
    path = Path(value).expanduser()
    if inp.extension and not path.name.endswith(inp.extension):
        raise InvalidInput(f"must be a '{inp.extension}' file")
    if not path.is_file():
        raise InvalidInput(f"file not found: {value}")
    return PendingUpload(path)


_MIN_MAX = (("min", "must be >= {}", -1), ("max", "must be <= {}", 1))
_AFTER_BEFORE = (("after", "must be after {}", -1), ("before", "must be before {}", 1))

# type -> (parse a raw value, its bounds, write the parsed value as JSON)
_SCALARS: dict[str, tuple[Callable[[Any], Any], tuple[Any, ...], Callable[[Any], Any]]] = {
    "STRING": (_text, (), str), "SECRET": (_text, (), str), "EMAIL": (_email, (), str),
    "URI": (_uri, (), str), "BOOLEAN": (_bool, (), bool), "BOOL": (_bool, (), bool),
    "INT": (_int, _MIN_MAX, int), "FLOAT": (_float, _MIN_MAX, float),
    "DURATION": (_duration, _MIN_MAX, format_duration),
    "DATETIME": (_datetime, _AFTER_BEFORE, datetime.isoformat),
    "DATE": (_date, _AFTER_BEFORE, date.isoformat),
    "TIME": (_time, _AFTER_BEFORE, lambda t: t.strftime("%H:%M:%S")),
    "JSON": (_json, (), lambda v: v), "YAML": (_yaml, (), lambda v: v),
}


def _check_bounds(inp: Input, value: Any, parse: Callable[[Any], Any],
                  dump: Callable[[Any], Any], bounds: tuple[Any, ...]) -> None:
    for prop, message, side in bounds:
        declared = getattr(inp, prop)
        if declared is None:
            continue
        bound = parse(declared)
        if (side < 0 and value < bound) or (side > 0 and value > bound):
            raise InvalidInput(message.format(dump(bound)))


def _pattern(inp: Input, text: str) -> str:
    if inp.validator is not None and re.fullmatch(inp.validator, text) is None:
        raise InvalidInput(f"must match the pattern '{inp.validator}'")
    return text


def coerce(inp: Input, value: Any, item_type: str | None = None) -> Any:
    """Coerce one raw value to ``inp``'s type (or ``item_type``, for an ARRAY's items) and check
    its rules. Raises ``InvalidInput``; a FILE path comes back as a ``PendingUpload``."""
    kind = item_type or inp.type
    if kind in _SCALARS:
        parse, bounds, dump = _SCALARS[kind]
        parsed = parse(value)
        if item_type is None:  # an ARRAY's items have no rules of their own
            if kind in ("STRING", "SECRET"):
                _pattern(inp, parsed)
            _check_bounds(inp, parsed, parse, dump, bounds)
        return dump(parsed)
    if kind == "ARRAY":
        if not inp.item_type or inp.item_type.upper() not in ITEM_TYPES:
            raise InvalidInput("an ARRAY input needs a valid 'itemType'")
        items = _list(value, "a JSON array")
        out = []
        for i, item in enumerate(items):
            try:
                out.append(coerce(inp, item, inp.item_type.upper()))
            except InvalidInput as exc:
                raise InvalidInput(f"item {i}: {exc}") from None
        return out
    if kind in ("SELECT", "ENUM"):
        return _select(inp, value)
    if kind == "MULTISELECT":
        return _multiselect(inp, value)
    if kind == "FILE":
        return _file(inp, value)
    raise InvalidInput(f"unknown input type '{kind}'")


# -- declarations --------------------------------------------------------------------------------

def check_declaration(inp: Input) -> list[tuple[str | None, str]]:
    """Problems with one input declaration, each as (the property it is about, or None for the
    input itself; message)."""
    kind = inp.type
    if kind not in INPUT_TYPES:
        from kray.registry import closest_names

        near = closest_names(kind, INPUT_TYPES)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        return [("type", f"unknown input type '{kind}'{hint}")]
    problems: list[tuple[str | None, str]] = []
    if inp.validator is not None:
        try:
            re.compile(inp.validator)
        except re.error as exc:
            problems.append(("validator", f"invalid regular expression: {exc}"))
            return problems
    if kind == "ARRAY":
        if not inp.item_type:
            problems.append((None, "an ARRAY input needs 'itemType'"))
        elif inp.item_type.upper() not in ITEM_TYPES:
            problems.append(("itemType", f"'{inp.item_type}' is not a valid itemType; expected "
                                         f"one of {', '.join(sorted(ITEM_TYPES))}"))
    if kind in _CHOICE_TYPES:
        values = inp.values if inp.values is not None else inp.options
        if not values:
            problems.append((None, f"a {kind} input needs 'values'"))
        elif isinstance(values, str) and choices(inp) is None and "{{" not in values:
            problems.append(("values", "'values' must be a list (or an expression)"))
    parse, bounds, _ = _SCALARS.get(kind, (None, (), None))
    for prop, _, _ in bounds:
        declared = getattr(inp, prop)
        if declared is not None and parse is not None:
            try:
                parse(declared)
            except InvalidInput as exc:
                problems.append((prop, f"invalid '{prop}': {exc}"))
    if problems:
        return problems
    if inp.defaults is not None and kind != "FILE":
        try:
            coerce(inp, inp.defaults)
        except InvalidInput as exc:
            problems.append(("defaults", f"invalid defaults: {exc}"))
    return problems


# -- resolution ----------------------------------------------------------------------------------

def _lookup(raw: Mapping[str, Any], input_id: str) -> tuple[bool, Any]:
    """The raw value of a (possibly dotted) input id: flat ``"a.b"`` or nested ``{a: {b}}``."""
    if input_id in raw:
        return True, raw[input_id]
    node: Any = raw
    for part in input_id.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _missing(kind: str, value: Any) -> bool:
    # A blank form field means "not given", except for a STRING, where "" is a value.
    return value is None or (value == "" and kind not in ("STRING", "SECRET"))


def _nest(result: dict[str, Any], input_id: str, value: Any) -> str | None:
    """Put ``value`` under a dotted id; return a message when it collides with another id."""
    *parents, leaf = input_id.split(".")
    node = result
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return f"conflicts with input '{part}'"
        node = child
    if leaf in node:
        return f"conflicts with another input nested under '{input_id}'"
    node[leaf] = value
    return None


def resolve_inputs(flow: Flow, raw: Mapping[str, Any], *,
                   upload: Uploader | None = None) -> dict[str, Any]:
    """Coerce and check the raw inputs of one execution against ``flow``'s declarations.

    Returns the input values (JSON data), dotted ids nested (``a.b`` -> ``{"a": {"b": v}}``).
    Raises ``InputValidationError`` with one issue per broken rule, each with
    ``path="inputs.<id>"``. FILE inputs given as local paths are uploaded through
    ``upload(input_id, path) -> uri``, and only once every input is valid.
    """
    issues: list[Issue] = []
    values: dict[str, Any] = {}

    def fail(input_id: str, message: str) -> None:
        issues.append(Issue(f"inputs.{input_id}: {message}", f"inputs.{input_id}"))

    for inp in flow.inputs:
        if inp.type not in INPUT_TYPES:
            fail(inp.id, f"unknown input type '{inp.type}'")
            continue
        given, value = _lookup(raw, inp.id)
        if not given or _missing(inp.type, value):
            if inp.defaults is not None:
                try:
                    values[inp.id] = coerce(inp, inp.defaults)
                except (InvalidInput, re.error) as exc:
                    fail(inp.id, f"invalid defaults: {exc}")
            elif inp.required:
                fail(inp.id, "required")
            else:
                values[inp.id] = None
            continue
        try:
            values[inp.id] = coerce(inp, value)
        except InvalidInput as exc:
            fail(inp.id, str(exc))
        except re.error as exc:
            fail(inp.id, f"invalid validator: {exc}")

    if not issues:
        for input_id, value in values.items():
            if not isinstance(value, PendingUpload):
                continue
            if upload is None:
                fail(input_id, "file uploads are not available here; give a kray:// URI")
                continue
            try:
                values[input_id] = upload(input_id, value.path)
            except Exception as exc:
                fail(input_id, f"upload failed: {exc}")
    if issues:
        raise InputValidationError(issues)

    result: dict[str, Any] = {}
    for input_id, value in values.items():
        conflict = _nest(result, input_id, value)
        if conflict:
            fail(input_id, conflict)
    if issues:
        raise InputValidationError(issues)
    return result
