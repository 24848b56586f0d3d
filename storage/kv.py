"""The KV store: typed values per namespace, with an optional time to live, in the repository.

Types follow Kestra's ``kvType``: STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION, JSON. A
value's type is inferred from the Python value unless one is given; a given type coerces the
value (``"12"`` as NUMBER is ``12``) or refuses it with a ``KVError``. Values are stored and
returned JSON-able: DATETIME as an ISO-8601 timestamp, DATE as ``YYYY-MM-DD``, DURATION as an
ISO-8601 duration (``PT1H30M``).

An expired entry reads as absent. Time comes from the injected clock, so TTLs are testable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kray.errors import KrayError
from kray.storage.repository import Repository, dumps, iso, loads, utc

KV_TYPES = ("STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
_MAX_NAME = 255
_INT = re.compile(r"^[+-]?\d+$")
# ISO-8601 durations as Java's Duration writes them: days, hours, minutes, seconds.
_DURATION = re.compile(r"^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


class KVError(KrayError, ValueError):
    """A KV key, namespace, type or value that the store refuses."""


def validate_name(name: str, what: str = "key") -> str:
    """Keys (and namespaces): a letter or digit, then letters, digits, ``.``, ``_``, ``-``."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > _MAX_NAME:
        raise KVError(f"invalid KV {what} {name!r}: use letters, digits, '.', '_' and '-', "
                      f"starting with a letter or digit, at most {_MAX_NAME} characters")
    return name


def infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "NUMBER"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, datetime):
        return "DATETIME"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, timedelta):
        return "DURATION"
    if isinstance(value, (dict, list, tuple)):
        return "JSON"
    if value is None:
        raise KVError("a KV value cannot be null; delete the key instead")
    raise KVError(f"cannot store a {type(value).__name__} in the KV store; give a kv_type")


def coerce(value: Any, kv_type: str | None = None) -> tuple[str, Any]:
    """The (type, JSON-able value) to store for ``value``, inferring the type when not given."""
    if value is None:
        raise KVError("a KV value cannot be null; delete the key instead")
    name = infer_type(value) if kv_type is None else str(kv_type).upper()
    if name not in KV_TYPES:
        raise KVError(f"unknown KV type {kv_type!r}; use one of {', '.join(KV_TYPES)}")
    try:
        return name, _COERCE[name](value)
    except KVError:
        raise
    except (TypeError, ValueError, OverflowError) as e:
        raise KVError(f"{value!r} is not a valid {name}: {e}") from e


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if _INT.match(text) else float(text)
    if not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinities cannot be stored")
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise TypeError("expected true or false")


def _datetime(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise TypeError(f"expected an ISO-8601 timestamp, got {type(value).__name__}")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return date.fromisoformat(value.strip()).isoformat()
    raise TypeError(f"expected an ISO-8601 date, got {type(value).__name__}")


def _duration(value: Any) -> str:
    if isinstance(value, str):
        match = _DURATION.match(value.strip().upper())
        if not match or not any(match.groups()[1:]):
            raise ValueError("expected an ISO-8601 duration such as PT30S, PT1H30M or P2D")
        sign, days, hours, minutes, seconds = match.groups()
        value = timedelta(days=int(days or 0), hours=int(hours or 0),
                          minutes=int(minutes or 0), seconds=float(seconds or 0))
        value = -value if sign else value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = timedelta(seconds=_number(value))
    if not isinstance(value, timedelta):
        raise TypeError(f"expected an ISO-8601 duration, got {type(value).__name__}")
    return format_duration(value)


def format_duration(value: timedelta) -> str:
    """``timedelta`` as an ISO-8601 duration, largest units first: ``P1DT2H``, ``PT0.5S``."""
    if value < timedelta(0):
        return "-" + format_duration(-value)
    days, rest = value.days, value.seconds
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    secs = f"{seconds}.{value.microseconds:06d}".rstrip("0").rstrip(".") \
        if value.microseconds else str(seconds)
    time_part = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M")) if n)
    if secs != "0":
        time_part += f"{secs}S"
    out = "P" + (f"{days}D" if days else "") + (f"T{time_part}" if time_part else "")
    return out if out != "P" else "PT0S"


def _json(value: Any) -> Any:
    if isinstance(value, str):
        value = json.loads(value)
    json.dumps(value, allow_nan=False)  # refuses what is not JSON, NaN included
    return value


_COERCE: dict[str, Callable[[Any], Any]] = {
    "STRING": _string, "NUMBER": _number, "BOOLEAN": _boolean, "DATETIME": _datetime,
    "DATE": _date, "DURATION": _duration, "JSON": _json}

_NOT_EXPIRED = "(expires_at IS NULL OR expires_at > ?)"
_ENTRY = f"SELECT key, type, value, {utc('expires_at')}, {utc('updated')} FROM kv"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class KVStore:
    """``kray.context.KVStore`` on a ``Repository``: one row per (namespace, key)."""

    def __init__(self, repository: Repository, clock: Callable[[], datetime] | None = None):
        self.repository = repository
        self._clock = clock or _utc_now

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    def get(self, namespace: str, key: str) -> Any | None:
        """The value, or None when absent or expired."""
        entry = self.get_entry(namespace, key)
        return entry["value"] if entry else None

    def get_entry(self, namespace: str, key: str) -> dict[str, Any] | None:
        """``{key, type, value, expiresAt, updated}``, or None when absent or expired."""
        validate_name(namespace, "namespace")
        validate_name(key)
        with self.repository.transaction() as con:
            row = con.execute(f"{_ENTRY} WHERE namespace = ? AND key = ? AND {_NOT_EXPIRED}",
                              [namespace, key, self._now()]).fetchone()
        return _entry(row) if row else None

    def set(self, namespace: str, key: str, value: Any, ttl_seconds: float | None = None,
            overwrite: bool = True, kv_type: str | None = None) -> bool:
        """Store a value; False (and nothing changed) when the key holds an unexpired value
        and ``overwrite`` is false. ``ttl_seconds`` must be positive."""
        validate_name(namespace, "namespace")
        validate_name(key)
        name, coerced = coerce(value, kv_type)
        if ttl_seconds is not None and (isinstance(ttl_seconds, bool) or not ttl_seconds > 0):
            raise KVError(f"ttl_seconds must be a positive number of seconds, not {ttl_seconds!r}")
        now = self._now()
        expires = now + timedelta(seconds=float(ttl_seconds)) if ttl_seconds is not None else None
        with self.repository.transaction() as con:
            if not overwrite and con.execute(
                    f"SELECT 1 FROM kv WHERE namespace = ? AND key = ? AND {_NOT_EXPIRED}",
                    [namespace, key, now]).fetchone():
                return False
            con.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", [namespace, key])
            con.execute("INSERT INTO kv VALUES (?, ?, ?, ?, ?, ?)",
                        [namespace, key, name, dumps(coerced), expires, now])
        return True

    def delete(self, namespace: str, key: str) -> bool:
        """Remove a key; False when it was absent (or already expired)."""
        validate_name(namespace, "namespace")
        validate_name(key)
        with self.repository.transaction() as con:
            live = con.execute(
                f"SELECT 1 FROM kv WHERE namespace = ? AND key = ? AND {_NOT_EXPIRED}",
                [namespace, key, self._now()]).fetchone()
            con.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", [namespace, key])
        return live is not None

    def keys(self, namespace: str, prefix: str = "") -> list[str]:
        """Unexpired keys of a namespace starting with ``prefix``, sorted."""
        validate_name(namespace, "namespace")
        if not isinstance(prefix, str):
            raise KVError(f"a key prefix must be a string, not {type(prefix).__name__}")
        with self.repository.transaction() as con:
            rows = con.execute(
                f"SELECT key FROM kv WHERE namespace = ? AND starts_with(key, ?) AND "
                f"{_NOT_EXPIRED} ORDER BY key", [namespace, prefix, self._now()]).fetchall()
        return [r[0] for r in rows]

    def entries(self, namespace: str) -> list[dict[str, Any]]:
        """Every unexpired entry of a namespace, by key."""
        validate_name(namespace, "namespace")
        with self.repository.transaction() as con:
            rows = con.execute(f"{_ENTRY} WHERE namespace = ? AND {_NOT_EXPIRED} ORDER BY key",
                               [namespace, self._now()]).fetchall()
        return [_entry(r) for r in rows]

    def namespaces(self) -> list[str]:
        """The namespaces that hold at least one unexpired entry, sorted."""
        with self.repository.transaction() as con:
            rows = con.execute(f"SELECT DISTINCT namespace FROM kv WHERE {_NOT_EXPIRED} "
                               "ORDER BY namespace", [self._now()]).fetchall()
        return [r[0] for r in rows]

    def purge_expired(self) -> int:
        """Delete expired entries (they already read as absent); returns how many."""
        now = self._now()
        with self.repository.transaction() as con:
            row = con.execute("SELECT count(*) FROM kv WHERE expires_at <= ?", [now]).fetchone()
            con.execute("DELETE FROM kv WHERE expires_at <= ?", [now])
        return int(row[0]) if row else 0


def _entry(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"key": row[0], "type": row[1], "value": loads(row[2]), "expiresAt": iso(row[3]),
            "updated": iso(row[4])}
