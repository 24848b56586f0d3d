"""Kestra's and Pebble's filters and tests, under their Pebble names.

Jinja's builtins stay available where Pebble has no filter of that name; where both exist with
different meanings (``default``, ``slice``, ``replace``, ``capitalize``, ``sort``, ``join``,
``reverse``, ``urlencode``, ``first``, ``length``...) Pebble's meaning wins, because flows are
written for Kestra. A filter applied to an undefined value raises the undefined error (only
``default`` accepts one); most filters map null to null, as in Kestra.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import wraps
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import yaml
from jinja2.runtime import Undefined

from kray.errors import TemplateError
from kray.templating import dates
from kray.templating.jq import JqError
from kray.templating.jq import run as run_jq
from kray.templating.values import fail_if_undefined, stringify, to_json

Filter = Callable[..., Any]


def strict(fn: Filter) -> Filter:
    """Raise the undefined error when the filtered value is undefined."""
    @wraps(fn)
    def wrapper(value: Any, *args: Any, **kwargs: Any) -> Any:
        fail_if_undefined(value)
        for arg in args:
            fail_if_undefined(arg)
        for arg in kwargs.values():
            fail_if_undefined(arg)
        return fn(value, *args, **kwargs)
    return wrapper


def null_safe(fn: Filter) -> Filter:
    """Strict, and null in gives null out (Kestra's ``if (input == null) return null``)."""
    @strict
    @wraps(fn)
    def wrapper(value: Any, *args: Any, **kwargs: Any) -> Any:
        return None if value is None else fn(value, *args, **kwargs)
    return wrapper


def _text(value: Any) -> str:
    return stringify(value)


def is_empty(value: Any) -> bool:
    """Pebble's ``empty``: null, blank string, empty collection or map."""
    if value is None or isinstance(value, Undefined):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return len(value) == 0
    return False


# ------------------------------------------------------------------------------ core filters

def default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Pebble's ``default``: the fallback for undefined, null, blank strings, empty collections."""
    return default_value if is_empty(value) else value


@null_safe
def keys(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.keys())
    if isinstance(value, (list, tuple)):
        return list(range(len(value)))
    kind = type(value).__name__
    raise TemplateError(f"'keys' filter can only be applied to a map or a list, not {kind}")


@null_safe
def values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    raise TemplateError(f"'values' filter can only be applied to a map, not {type(value).__name__}")


_NUMBER_TYPES = {"INT": int, "LONG": int, "BIGINTEGER": int, "FLOAT": float, "DOUBLE": float,
                 "BIGDECIMAL": float}


@null_safe
def number(value: Any, type: str | None = None) -> int | float:
    """Parse a number from a string: ``'12' | number`` -> 12, ``number('FLOAT')`` -> 12.0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = _text(value).strip()
    kind = _NUMBER_TYPES.get(str(type).upper()) if type else None
    if type and kind is None:
        raise TemplateError(f"unknown number type '{type}' (one of {', '.join(_NUMBER_TYPES)})")
    try:
        if kind is float:
            return float(text)
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        if kind is int or re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        return float(text)
    except ValueError:
        raise TemplateError(f"'{text}' is not a number") from None


@null_safe
def slugify(value: Any) -> str:
    text = re.sub(r"\s", "-", _text(value))
    text = unicodedata.normalize("NFD", text)
    text = re.sub(r"[^\w-]", "", text, flags=re.ASCII)
    text = re.sub(r"-{2,}", "-", text).strip("-")
    return text.lower()


@null_safe
def substring_before(value: Any, separator: str) -> str:
    text, sep = _text(value), _text(separator)
    index = text.find(sep)
    return text if index < 0 else text[:index]


@null_safe
def substring_after(value: Any, separator: str) -> str:
    text, sep = _text(value), _text(separator)
    index = text.find(sep)
    return "" if index < 0 else text[index + len(sep):]


@null_safe
def substring_before_last(value: Any, separator: str) -> str:
    text, sep = _text(value), _text(separator)
    if not sep:
        return text
    index = text.rfind(sep)
    return text if index < 0 else text[:index]


@null_safe
def substring_after_last(value: Any, separator: str) -> str:
    text, sep = _text(value), _text(separator)
    index = text.rfind(sep)
    return "" if index < 0 or not sep else text[index + len(sep):]


@null_safe
def starts_with(value: Any, prefix: str) -> bool:
    return _text(value).startswith(_text(prefix))


@null_safe
def ends_with(value: Any, suffix: str) -> bool:
    return _text(value).endswith(_text(suffix))


@null_safe
def flatten(value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise TemplateError("'flatten' filter can only be applied to a list")
    out: list[Any] = []
    for item in value:
        out.extend(item) if isinstance(item, (list, tuple)) else out.append(item)
    return out


def _newline(text: str) -> str:
    for sep in ("\r\n", "\n\r", "\n", "\r"):
        if sep in text:
            return sep
    return "\n"


def _indent(value: Any, amount: Any, prefix: str, leading: bool) -> Any:
    text = _text(value)
    if not text:
        return text
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise TemplateError("indent filters expect an integer amount >= 0")
    sep = _newline(text)
    if leading:
        text = sep + text
    return text.replace(sep, sep + _text(prefix) * amount)


@null_safe
def indent(value: Any, amount: Any = None, prefix: str = " ", *_jinja: Any) -> Any:
    """Indent every line but the first by ``amount`` copies of ``prefix``."""
    return _indent(value, amount, prefix, leading=False)


@null_safe
def nindent(value: Any, amount: Any = None, prefix: str = " ") -> Any:
    """A newline, then every line indented by ``amount`` copies of ``prefix``."""
    return _indent(value, amount, prefix, leading=True)


@null_safe
def chunk(value: Any, size: Any) -> list[list[Any]]:
    if not isinstance(value, (list, tuple)):
        raise TemplateError("'chunk' filter can only be applied to a list")
    if isinstance(size, bool) or not isinstance(size, (int, float)) or int(size) < 1:
        raise TemplateError("'chunk' filter expects a size >= 1")
    n = int(size)
    return [list(value[i:i + n]) for i in range(0, len(value), n)]


def _digest(name: str) -> Filter:
    @null_safe
    def digest(value: Any) -> str:
        return hashlib.new(name, _text(value).encode()).hexdigest()
    digest.__name__ = name
    return digest


@null_safe
def base64encode(value: Any) -> str:
    data = value if isinstance(value, bytes) else _text(value).encode()
    return base64.b64encode(data).decode("ascii")


@null_safe
def base64decode(value: Any) -> str:
    text = _text(value).strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise TemplateError("'base64decode': the value is not base64-encoded UTF-8 text") from None


@null_safe
def urlencode(value: Any) -> str:
    """Java's ``URLEncoder.encode(value, UTF-8)``: form encoding, spaces as ``+``."""
    if isinstance(value, Mapping):
        return "&".join(f"{urlencode(k)}={urlencode(v)}" for k, v in value.items())
    return quote_plus(_text(value), safe="*").replace("~", "%7E")


@null_safe
def urldecode(value: Any) -> str:
    return unquote_plus(_text(value))


@null_safe
def first(value: Any) -> Any:
    if isinstance(value, str):
        return value[:1]
    if isinstance(value, Mapping):
        value = value.values()
    for item in value:
        return item
    return None


@null_safe
def last(value: Any) -> Any:
    if isinstance(value, str):
        return value[-1:]
    if isinstance(value, Mapping):
        value = list(value.values())
    items = list(value)
    return items[-1] if items else None


@strict
def length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, (str, Mapping, list, tuple, set, frozenset)):
        return len(value)
    if isinstance(value, Iterable):
        return len(list(value))
    raise TemplateError(f"'length' cannot be applied to {type(value).__name__}")


@null_safe
def join(value: Any, separator: str = "", attribute: Any = None) -> str:
    items = value.values() if isinstance(value, Mapping) else value
    if attribute is not None:
        items = [item.get(attribute) if isinstance(item, Mapping) else item for item in items]
    return _text(separator).join(_text(item) for item in items)


@null_safe
def split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    """Java's ``String.split``-like: without a limit, trailing empty strings are dropped."""
    text, sep = _text(value), _text(delimiter)
    if limit is not None and int(limit) > 0:
        return text.split(sep, int(limit) - 1) if sep else list(text)[:int(limit)]
    parts = text.split(sep) if sep else list(text)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


@null_safe
def replace(value: Any, old: Any, new: Any = None, count: int | None = None,
            regexp: bool = False) -> Any:
    """Pebble/Kestra ``replace({'a': 'b'}, regexp=false)``, or Jinja's ``replace(old, new)``."""
    if isinstance(old, Mapping):
        return _replace_pairs(value, old, bool(regexp or new is True))
    text = _text(value)
    if new is None:
        raise TemplateError("'replace' expects a map of replacements or (old, new)")
    return text.replace(_text(old), _text(new), -1 if count is None else int(count))


def _replace_pairs(value: Any, pairs: Mapping[Any, Any], regexp: bool) -> Any:
    if isinstance(value, Mapping):
        return {k: _replace_pairs(v, pairs, regexp) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_pairs(v, pairs, regexp) for v in value]
    text = _text(value)
    for old, new in pairs.items():
        if regexp:
            repl = re.sub(r"\$(\d+)", r"\\\1", _text(new))  # Java's $1 groups
            text = re.sub(_text(old), repl, text)
        else:
            text = text.replace(_text(old), _text(new))
    return text


@null_safe
def slice_(value: Any, from_index: int = 0, to_index: int | None = None, *,
           fromIndex: int | None = None, toIndex: int | None = None) -> Any:
    """Pebble's ``slice(fromIndex, toIndex)``: a substring or a sub-list."""
    start = from_index if fromIndex is None else fromIndex
    end = to_index if toIndex is None else toIndex
    if isinstance(value, Mapping) or not hasattr(value, "__getitem__"):
        raise TemplateError("'slice' can only be applied to a string or a list")
    n = len(value)
    end = n if end is None else int(end)
    if not 0 <= int(start) <= end <= n:
        raise TemplateError(f"'slice' indexes {start}..{end} are out of bounds (length {n})")
    return value[int(start):end]


@null_safe
def sort(value: Any, reverse: bool = False, attribute: Any = None) -> list[Any]:
    items = list(value)
    key = (lambda item: item.get(attribute)) if attribute is not None else None
    try:
        return sorted(items, key=key, reverse=bool(reverse))
    except TypeError:
        raise TemplateError("'sort' cannot compare values of different types") from None


@null_safe
def rsort(value: Any) -> list[Any]:
    result: list[Any] = sort(value, reverse=True)
    return result


@null_safe
def reverse(value: Any) -> Any:
    if isinstance(value, str):
        return value[::-1]
    return list(value)[::-1]


@null_safe
def capitalize(value: Any) -> str:
    text = _text(value)
    return text[:1].upper() + text[1:]


@null_safe
def abbreviate(value: Any, length: int) -> str:
    text, width = _text(value), int(length)
    if len(text) <= width:
        return text
    return text[:width] if width < 3 else text[:width - 3] + "..."


@null_safe
def merge(value: Any, other: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(other, Mapping):
        return {**value, **other}
    if isinstance(value, (list, tuple)):
        return [*value, *(other if isinstance(other, (list, tuple)) else [other])]
    raise TemplateError("'merge' expects two maps, or a list and a list or value")


@null_safe
def distinct(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if item not in out:
            out.append(item)
    return out


@null_safe
def escape_char(value: Any, type: str = "double") -> str:
    text = _text(value)
    if type == "single":
        return text.replace("\\", "\\\\").replace("'", "\\'")
    if type == "double":
        return text.replace("\\", "\\\\").replace('"', '\\"')
    if type == "shell":
        return text.replace("'", "'\\''")
    raise TemplateError("'escapeChar' type must be single, double or shell")


@null_safe
def numberformat(value: Any, pattern: str) -> str:
    """Java ``DecimalFormat`` for the common patterns: ``#,##0.00``, ``#.##``, ``0.000``."""
    m = re.fullmatch(r"([^#0,.]*)([#0,]*)(?:\.([#0]*))?([^#0,.]*)", _text(pattern))
    if m is None:
        raise TemplateError(f"unsupported number format '{pattern}'")
    prefix, int_part, frac_part, suffix = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    try:
        number_value = Decimal(str(value))
    except InvalidOperation:
        raise TemplateError(f"'{value}' is not a number") from None
    if "%" in prefix + suffix:
        number_value *= 100
    min_frac, max_frac = frac_part.count("0"), len(frac_part)
    rounded = number_value.quantize(Decimal(1).scaleb(-max_frac), rounding=ROUND_HALF_EVEN)
    sign = "-" if rounded < 0 else ""
    whole, _, frac = f"{abs(rounded):f}".partition(".")
    frac = frac.rstrip("0").ljust(min_frac, "0")
    whole = whole.lstrip("0").rjust(max(int_part.count("0"), 0), "0")
    if "," in int_part:
        group = len(int_part) - int_part.rfind(",") - 1
        whole = ",".join(reversed([whole[::-1][i:i + group][::-1]
                                   for i in range(0, len(whole), group)])) if group else whole
    return f"{sign}{prefix}{whole}{'.' + frac if frac else ''}{suffix}"


@null_safe
def jq(value: Any, expression: str) -> list[Any]:
    """Kestra's ``jq``: always a list of results (use ``| first`` for one)."""
    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError:
            raise TemplateError("'jq' input is a string that is not JSON") from None
    else:
        data = json.loads(to_json(value))
    try:
        return run_jq(_text(expression), data)
    except JqError as exc:
        raise TemplateError(str(exc)) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise TemplateError(f"jq '{expression}' failed: {exc}") from None


@strict
def to_json_filter(value: Any) -> str:
    return to_json(value)


@strict
def to_yaml(value: Any) -> str:
    plain = json.loads(to_json(value))
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _none_passthrough(name: str, fn: Callable[[str], str]) -> Filter:
    @null_safe
    def wrapper(value: Any, *args: Any) -> str:
        return fn(_text(value), *args)
    wrapper.__name__ = name
    return wrapper


# ------------------------------------------------------------------------------ date filters

def date_filters(default_zone: tzinfo) -> dict[str, Filter]:
    """The filters that depend on the engine's default time zone."""

    def zone_of(time_zone: Any) -> tzinfo:
        return dates.zone(time_zone, default_zone)

    @null_safe
    def date(value: Any, format: str | None = None, timeZone: str | None = None,
             existingFormat: str | None = None, locale: str | None = None) -> str:
        return dates.format_date(value, format, zone_of(timeZone), existingFormat)

    @null_safe
    def date_add(value: Any, amount: int, unit: str, format: str | None = None,
                 timeZone: str | None = None, existingFormat: str | None = None,
                 locale: str | None = None) -> str:
        tz = zone_of(timeZone)
        moved = dates.add(dates.to_datetime(value, tz, existingFormat), amount, unit)
        return dates.format_datetime(moved.astimezone(tz), format or "iso")

    def timestamp(unit: str) -> Filter:
        @null_safe
        def convert(value: Any, timeZone: str | None = None,
                    existingFormat: str | None = None) -> int:
            return dates.epoch(dates.to_datetime(value, zone_of(timeZone), existingFormat), unit)
        return convert

    return {"date": date, "dateAdd": date_add, "timestamp": timestamp("s"),
            "timestampMilli": timestamp("ms"), "timestampMicro": timestamp("us"),
            "timestampNano": timestamp("ns")}


FILTERS: dict[str, Filter] = {
    "default": default, "d": default,
    "toJson": to_json_filter, "json": to_json_filter, "jsonEncode": to_json_filter,
    "tojson": to_json_filter, "toYaml": to_yaml, "yaml": to_yaml,
    "keys": keys, "values": values, "number": number, "slugify": slugify,
    "substringBefore": substring_before, "substringAfter": substring_after,
    "substringBeforeLast": substring_before_last, "substringAfterLast": substring_after_last,
    "startsWith": starts_with, "endsWith": ends_with, "flatten": flatten,
    "indent": indent, "nindent": nindent, "chunk": chunk,
    "sha1": _digest("sha1"), "sha256": _digest("sha256"), "sha512": _digest("sha512"),
    "md5": _digest("md5"), "base64encode": base64encode, "base64decode": base64decode,
    "urlencode": urlencode, "urldecode": urldecode, "first": first, "last": last,
    "length": length, "count": length, "size": length, "join": join, "split": split,
    "replace": replace, "slice": slice_, "sort": sort, "rsort": rsort, "reverse": reverse,
    "capitalize": capitalize, "abbreviate": abbreviate, "merge": merge, "distinct": distinct,
    "uniq": distinct, "escapeChar": escape_char, "numberformat": numberformat, "jq": jq,
    "string": null_safe(_text), "raw": lambda value: value,
    "upper": _none_passthrough("upper", str.upper),
    "lower": _none_passthrough("lower", str.lower),
    "trim": _none_passthrough("trim", str.strip),
}


# ------------------------------------------------------------------------------------- tests

def _is_json(value: Any) -> bool:
    fail_if_undefined(value)
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


TESTS: dict[str, Callable[..., bool]] = {
    "null": lambda value: fail_if_undefined(value) is None,
    "empty": lambda value: is_empty(fail_if_undefined(value)),
    "json": _is_json,
    "map": lambda value: isinstance(fail_if_undefined(value), Mapping),
}
