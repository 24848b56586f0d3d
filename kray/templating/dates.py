"""Dates as Kestra's Pebble filters see them.

Kestra formats with Java's ``DateTimeFormatter``, so flows carry Java patterns
(``yyyy-MM-dd'T'HH:mm:ss.SSSXXX``) and named formats (``iso``, ``iso_sec``, ``sql``...). This module
formats and parses those patterns on Python datetimes.

Rules kept from Kestra's ``AbstractDate``:

* the output is always converted to the target zone: the ``timeZone`` argument, else the
  engine's default zone (Kestra uses the JVM's zone; kray uses UTC unless configured);
* a string without an offset is read in the target zone; a bare date is the start of that day;
  a ``date`` object is noon of that day (Java ``LocalDate`` -> ``ZonedDateTime`` at ``NOON``);
* a number is epoch seconds (kray addition: an absolute value of 1e11 or more, i.e. past the
  year 5138 in seconds, is read as epoch milliseconds).

Python datetimes hold microseconds, so nanosecond digits (``SSSSSSSSS``, ``n``) are padded with
zeros and nanoseconds in parsed strings are truncated.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kray.errors import TemplateError

UTC = timezone.utc

MONTHS = [calendar.month_name[i] for i in range(1, 13)]  # English, like Kestra's default locale
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# Kestra's named formats that are plain patterns.
NAMED_PATTERNS: dict[str, str] = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "iso_milli": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",  # kray addition
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    "sql_sec": "yyyy-MM-dd HH:mm:ss",  # kray addition (the name Kestra users often guess)
    "sql_milli": "yyyy-MM-dd HH:mm:ss.SSS",  # kray addition
    "iso_local_date": "yyyy-MM-dd",
    "iso_date": "yyyy-MM-ddXXX",  # Java's ISO_DATE prints the offset when there is one
    "iso_ordinal_date": "yyyy-DDDXXX",
    "short": "M/d/yy, h:mm a",  # en_US FormatStyle.SHORT
    "medium": "MMM d, yyyy, h:mm:ss a",  # en_US FormatStyle.MEDIUM
    "long": "MMMM d, yyyy 'at' h:mm:ss a z",
    "full": "EEEE, MMMM d, yyyy 'at' h:mm:ss a z",
}
# Named formats built from Java's ISO_* formatters (variable-width fractions, zone ids).
ISO_NAMED = {"iso_date_time", "iso_zoned_date_time", "iso_offset_date_time", "iso_instant",
             "iso_local_date_time", "iso_time", "iso_local_time", "iso_offset_time",
             "iso_week_date", "rfc_1123_date_time"}

# ChronoUnit names accepted by dateAdd; time-based units add an exact duration.
TIME_UNITS: dict[str, float] = {  # microseconds per unit
    "NANOS": 0.001, "MICROS": 1, "MILLIS": 1_000, "SECONDS": 1_000_000, "MINUTES": 60_000_000,
    "HOURS": 3_600_000_000, "HALF_DAYS": 43_200_000_000,
}
DAY_UNITS = {"DAYS": 1, "WEEKS": 7}
MONTH_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}

_LETTERS = set("GuyYDMLdQqwWEecFaBhKkHmsSAnNVvzOXxZ")
_OPT_START, _OPT_END = object(), object()


class _Field(NamedTuple):
    letter: str
    width: int  # how many times the letter repeats


# --------------------------------------------------------------------------------------- zones

def zone(name: Any, default: tzinfo = UTC) -> tzinfo:
    """A Java ``ZoneId`` string (``Europe/Paris``, ``UTC``, ``Z``, ``+02:00``, ``GMT+2``)."""
    if name is None or name == "":
        return default
    if isinstance(name, tzinfo):
        return name
    text = str(name).strip()
    if text in ("Z", "UTC", "GMT", "UT"):
        return UTC
    m = re.fullmatch(r"(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?", text)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0),
                          seconds=int(m.group(4) or 0))
        return timezone(sign * delta) if delta else UTC
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise TemplateError(f"unknown time zone '{text}'") from None


def zone_id(tz: tzinfo | None) -> str:
    """Java's ``ZoneId.toString()``: a region id, or ``Z`` / ``+01:00`` for a fixed offset."""
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    offset = tz.utcoffset(None) if tz is not None else None
    return _offset(offset or timedelta(0), colon=True, z=True, seconds=True)


# ----------------------------------------------------------------------------------- rendering

def iso(value: date | time) -> str:
    """How a date/time renders when printed: ISO-8601, ``Z`` for UTC."""
    text = value.isoformat()
    if isinstance(value, (datetime, time)) and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text


# ---------------------------------------------------------------------------------- conversion

def to_datetime(value: Any, tz: tzinfo, existing_format: str | None = None) -> datetime:
    """Kestra's ``AbstractDate.convert``: any date-like value as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(12), tz)
    if isinstance(value, bool):
        raise TemplateError(f"cannot use {value!r} as a date")
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) >= 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz)
        except (OverflowError, OSError, ValueError):
            raise TemplateError(f"epoch value {value} is out of range") from None
    if isinstance(value, str):
        if existing_format:
            return parse(value, existing_format, tz)
        return parse_iso(value, tz)
    raise TemplateError(f"cannot use a value of type {type(value).__name__} as a date")


def parse_iso(text: str, tz: tzinfo) -> datetime:
    """ISO-8601 date or date-time, with or without an offset, optionally ``[Region/Zone]``."""
    raw = text.strip()
    region: tzinfo | None = None
    m = re.fullmatch(r"(.*)\[([^\]]+)\]", raw)
    if m:
        raw, region = m.group(1), zone(m.group(2))
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise TemplateError(f"cannot parse date '{text}': expected ISO-8601 "
                            "(use existingFormat for other formats)") from None
    if region is not None:
        return dt.astimezone(region) if dt.tzinfo else dt.replace(tzinfo=region)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


def format_date(value: Any, fmt: str | None, tz: tzinfo, existing_format: str | None = None) -> str:
    """The ``date`` filter: convert, move to ``tz``, format with a Java pattern or named format."""
    dt = to_datetime(value, tz, existing_format).astimezone(tz)
    return format_datetime(dt, fmt or "iso")


def format_datetime(dt: datetime, fmt: str) -> str:
    """Format an aware datetime with a named format or a Java ``DateTimeFormatter`` pattern."""
    if fmt in ISO_NAMED:
        return _format_iso_named(dt, fmt)
    return _format_tokens(dt, _tokens(NAMED_PATTERNS.get(fmt, fmt)))


def add(dt: datetime, amount: int, unit: str) -> datetime:
    """``ZonedDateTime.plus(amount, ChronoUnit.valueOf(unit))``."""
    name = str(unit).upper()
    if isinstance(amount, bool) or not isinstance(amount, int):
        try:
            amount = int(amount)
        except (TypeError, ValueError):
            raise TemplateError(f"dateAdd amount must be an integer, got {amount!r}") from None
    if name in TIME_UNITS:  # an exact duration: go through UTC so DST cannot shift it
        moved = dt.astimezone(UTC) + timedelta(microseconds=TIME_UNITS[name] * amount)
        return moved.astimezone(dt.tzinfo)
    if name in DAY_UNITS:  # calendar days: same wall-clock time
        return _normalize(dt + timedelta(days=DAY_UNITS[name] * amount))
    if name in MONTH_UNITS:
        months = dt.year * 12 + dt.month - 1 + MONTH_UNITS[name] * amount
        year, month = divmod(months, 12)
        if not 1 <= year <= 9999:
            raise TemplateError("dateAdd result is out of range")
        day = min(dt.day, calendar.monthrange(year, month + 1)[1])
        return _normalize(dt.replace(year=year, month=month + 1, day=day))
    known = ", ".join([*TIME_UNITS, *DAY_UNITS, *MONTH_UNITS])
    raise TemplateError(f"unknown dateAdd unit '{unit}' (one of {known})")


def _normalize(dt: datetime) -> datetime:
    # A wall-clock time in a DST gap or overlap: resolve it as Java does (the later offset).
    return dt.astimezone(UTC).astimezone(dt.tzinfo)


def epoch(dt: datetime, unit: str) -> int:
    """Epoch value of an aware datetime in s / ms / us / ns."""
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return {"s": micros // 1_000_000, "ms": micros // 1_000, "us": micros,
            "ns": micros * 1_000}[unit]


# ------------------------------------------------------------------------------ pattern lexing

@lru_cache(maxsize=256)
def _tokens(pattern: str) -> tuple[Any, ...]:
    """Split a Java pattern into literals, fields and optional-section markers."""
    out: list[Any] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "'":
            end = i + 1
            buf = []
            while True:
                if end >= n:
                    raise TemplateError(f"unterminated quote in date pattern '{pattern}'")
                if pattern[end] == "'":
                    if end + 1 < n and pattern[end + 1] == "'":
                        buf.append("'")
                        end += 2
                        continue
                    break
                buf.append(pattern[end])
                end += 1
            out.append("".join(buf) if buf or end > i + 1 else "'")
            i = end + 1
        elif ch.isascii() and ch.isalpha():
            j = i
            while j < n and pattern[j] == ch:
                j += 1
            if ch not in _LETTERS:
                raise TemplateError(f"unknown pattern letter '{ch}' in date pattern '{pattern}'")
            out.append(_Field(ch, j - i))
            i = j
        elif ch in "{}#":
            raise TemplateError(f"reserved character '{ch}' in date pattern '{pattern}'")
        elif ch == "[":
            out.append(_OPT_START)
            i += 1
        elif ch == "]":
            out.append(_OPT_END)
            i += 1
        else:
            out.append(ch)
            i += 1
    return tuple(out)


# -------------------------------------------------------------------------------- formatting

def _format_tokens(dt: datetime, tokens: tuple[Any, ...]) -> str:
    return "".join(tok if isinstance(tok, str) else _format_field(dt, tok)
                   for tok in tokens if tok is not _OPT_START and tok is not _OPT_END)


def _num(value: int, count: int) -> str:
    return str(value) if count == 1 else str(value).zfill(count)


def _offset(delta: timedelta, *, colon: bool, z: bool, seconds: bool = False,
            minutes: str = "always") -> str:
    total = int(delta.total_seconds())
    if total == 0 and z:
        return "Z"
    sign = "-" if total < 0 else "+"
    total = abs(total)
    hh, rest = divmod(total, 3600)
    mm, ss = divmod(rest, 60)
    sep = ":" if colon else ""
    text = f"{sign}{hh:02d}"
    if minutes == "always" or (minutes == "nonzero" and (mm or ss)):
        text += f"{sep}{mm:02d}"
    if seconds and ss:
        text += f"{sep}{ss:02d}"
    return text


def _gmt(delta: timedelta, long: bool) -> str:
    total = int(delta.total_seconds())
    if total == 0:
        return "GMT"
    sign = "-" if total < 0 else "+"
    hh, rest = divmod(abs(total), 3600)
    mm = rest // 60
    if long:
        return f"GMT{sign}{hh:02d}:{mm:02d}"
    return f"GMT{sign}{hh}" + (f":{mm:02d}" if mm else "")


def _us_week_year(d: date) -> tuple[int, int]:
    """Week-based year and week number with en_US rules (weeks start Sunday, week 1 holds Jan 1)."""
    dow = d.isoweekday() % 7  # Sunday = 0
    week_end = d + timedelta(days=6 - dow)
    year = week_end.year if week_end.year > d.year else d.year
    jan1 = date(year, 1, 1)
    week1_start = jan1 - timedelta(days=jan1.isoweekday() % 7)
    return year, (d - week1_start).days // 7 + 1


def _text(names: list[str], index: int, count: int) -> str:
    name = names[index]
    return name[:3] if count <= 3 else name if count == 4 else name[0]


def _format_field(dt: datetime, field: _Field) -> str:  # noqa: C901 - one branch per letter
    letter, count = field
    offset = dt.utcoffset() or timedelta(0)
    if letter == "G":
        return "AD" if count <= 3 else "Anno Domini" if count == 4 else "A"
    if letter in "uy":
        return f"{dt.year % 100:02d}" if count == 2 else _num(dt.year, count)
    if letter == "Y":
        year = _us_week_year(dt.date())[0]
        return f"{year % 100:02d}" if count == 2 else _num(year, count)
    if letter == "w":
        return _num(_us_week_year(dt.date())[1], count)
    if letter == "W":
        first_dow = dt.replace(day=1).isoweekday() % 7
        return _num((dt.day + first_dow - 1) // 7 + 1, count)
    if letter == "F":
        return _num((dt.day - 1) // 7 + 1, count)
    if letter == "D":
        return _num(dt.timetuple().tm_yday, count)
    if letter in "ML":
        return _num(dt.month, count) if count <= 2 else _text(MONTHS, dt.month - 1, count)
    if letter == "d":
        return _num(dt.day, count)
    if letter in "Qq":
        quarter = (dt.month - 1) // 3 + 1
        if count <= 2:
            return _num(quarter, count)
        if count == 3:
            return f"Q{quarter}"
        return f"{quarter}{['st', 'nd', 'rd', 'th'][quarter - 1]} quarter"
    if letter == "E" or (letter in "ec" and count >= 3):
        return _text(DAYS, dt.weekday(), count)
    if letter in "ec":
        return _num(dt.isoweekday() % 7 + 1, count)  # en_US: Sunday is day 1
    if letter == "a":
        return "AM" if dt.hour < 12 else "PM"
    if letter == "B":
        return "in the morning" if 6 <= dt.hour < 12 else "in the afternoon" if 12 <= dt.hour < 18 \
            else "in the evening" if 18 <= dt.hour < 21 else "at night"
    if letter == "h":
        return _num(dt.hour % 12 or 12, count)
    if letter == "K":
        return _num(dt.hour % 12, count)
    if letter == "k":
        return _num(dt.hour or 24, count)
    if letter == "H":
        return _num(dt.hour, count)
    if letter == "m":
        return _num(dt.minute, count)
    if letter == "s":
        return _num(dt.second, count)
    if letter == "S":
        return f"{dt.microsecond * 1000:09d}"[:count].ljust(count, "0")
    if letter == "n":
        return _num(dt.microsecond * 1000, count)
    if letter in "AN":
        micros = ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1_000_000 + dt.microsecond
        return _num(micros // 1000 if letter == "A" else micros * 1000, count)
    if letter == "V":
        if count != 2:
            raise TemplateError("pattern letter 'V' must be 'VV'")
        return zone_id(dt.tzinfo)
    if letter in "zv":
        name = dt.tzname() or zone_id(dt.tzinfo)
        if count == 4 and name in ("UTC", "Z"):
            return "Coordinated Universal Time"
        return "UTC" if name == "Z" else name
    if letter == "O":
        return _gmt(offset, long=count == 4)
    if letter in "Xx":
        z = letter == "X"
        if count == 1:
            return _offset(offset, colon=False, z=z, minutes="nonzero")
        return _offset(offset, colon=count in (3, 5), z=z, seconds=count >= 4)
    if letter == "Z":
        if count <= 3:
            return _offset(offset, colon=False, z=False)
        if count == 4:
            return _gmt(offset, long=True)
        return _offset(offset, colon=True, z=True, seconds=True)
    raise TemplateError(f"unsupported pattern letter '{letter}'")  # pragma: no cover


def _fraction(dt: datetime) -> str:
    """Java's ``appendFraction(NANO_OF_SECOND, 0, 9, true)``: as many digits as needed."""
    digits = f"{dt.microsecond:06d}".rstrip("0")
    return f".{digits}" if digits else ""


def _format_iso_named(dt: datetime, fmt: str) -> str:
    local_time = f"{dt:%H:%M:%S}{_fraction(dt)}"
    local = f"{dt:%Y-%m-%d}T{local_time}"
    offset = _offset(dt.utcoffset() or timedelta(0), colon=True, z=True, seconds=True)
    if fmt in ("iso_date_time", "iso_zoned_date_time"):
        key = getattr(dt.tzinfo, "key", None)
        return f"{local}{offset}" + (f"[{key}]" if key else "")
    if fmt == "iso_offset_date_time":
        return local + offset
    if fmt == "iso_instant":
        utc = dt.astimezone(UTC)
        return f"{utc:%Y-%m-%dT%H:%M:%S}{_fraction(utc)}Z"
    if fmt == "iso_local_date_time":
        return local
    if fmt in ("iso_time", "iso_offset_time"):
        return local_time + offset
    if fmt == "iso_local_time":
        return local_time
    if fmt == "iso_week_date":
        year, week, weekday = dt.isocalendar()
        return f"{year:04d}-W{week:02d}-{weekday}{offset}"
    # rfc_1123_date_time
    total = int((dt.utcoffset() or timedelta(0)).total_seconds())
    zone_text = "GMT" if total == 0 else _offset(timedelta(seconds=total), colon=False, z=False)
    day, month = DAYS[dt.weekday()][:3], MONTHS[dt.month - 1][:3]
    return f"{day}, {dt.day} {month} {dt:%Y %H:%M:%S} {zone_text}"


# ----------------------------------------------------------------------------------- parsing

def _names_re(names: list[str], count: int) -> str:
    forms = [n[:3] for n in names] if count <= 3 else names if count == 4 else [n[0] for n in names]
    return "(?i:" + "|".join(sorted(set(forms), key=len, reverse=True)) + ")"


_OFFSET_RE = r"Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?|GMT(?:[+-]\d{1,2}(?::?\d{2})?)?|UTC"


@lru_cache(maxsize=256)
def _parser(pattern: str) -> tuple[re.Pattern[str], dict[str, _Field]]:
    parts: list[str] = []
    groups: dict[str, _Field] = {}
    for index, tok in enumerate(_tokens(pattern)):
        if tok is _OPT_START:
            parts.append("(?:")
            continue
        if tok is _OPT_END:
            parts.append(")?")
            continue
        if isinstance(tok, str):
            parts.append(re.escape(tok))
            continue
        letter, count = tok
        name = f"g{index}"
        if letter in "uyY":
            body = r"\d{2}" if count == 2 else rf"[+-]?\d{{{count},9}}"
        elif letter in "ML" and count >= 3:
            body = _names_re(MONTHS, count)
        elif letter == "E" or (letter in "ec" and count >= 3):
            body = _names_re(DAYS, count)
        elif letter == "a":
            body = "(?i:AM|PM)"
        elif letter == "G":
            body = "(?i:AD|BC|Anno Domini|Before Christ|A|B)"
        elif letter == "S":
            body = rf"\d{{{count}}}"
        elif letter in "nNA":
            body = r"\d{1,19}"
        elif letter == "D":
            body = r"\d{1,3}" if count == 1 else rf"\d{{{count},3}}"
        elif letter in "OXxZ":
            body = _OFFSET_RE
        elif letter == "V":
            body = r"Z|[+-]\d{2}:\d{2}|[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*"
        elif letter in "zv":
            body = r"[A-Za-z][A-Za-z0-9_/+\-]*"
        elif letter == "B":
            body = r"(?i:in the morning|in the afternoon|in the evening|at night)"
        else:  # numeric: d H h k K m s M L Q q w W F e c
            body = r"\d{1,2}" if count == 1 else rf"\d{{{count}}}"
        parts.append(f"(?P<{name}>{body})")
        groups[name] = tok
    return re.compile("".join(parts), re.ASCII), groups


def parse(text: str, fmt: str, tz: tzinfo) -> datetime:
    """Parse ``text`` with a Java pattern or named format (Kestra's ``existingFormat``)."""
    if fmt in ISO_NAMED or fmt == "iso_date":
        return parse_iso(text, tz)
    pattern = NAMED_PATTERNS.get(fmt, fmt)
    regex, groups = _parser(pattern)
    m = regex.fullmatch(text.strip())
    if m is None:
        raise TemplateError(f"cannot parse date '{text}' with format '{fmt}'")
    values: dict[str, Any] = {}
    for name, (letter, count) in groups.items():
        raw = m.group(name)
        if raw is None:
            continue
        if letter in "uy":
            values["year"] = 2000 + int(raw) if count == 2 else int(raw)
        elif letter in "ML":
            values["month"] = int(raw) if count <= 2 else next(
                i + 1 for i, n in enumerate(MONTHS) if n.lower().startswith(raw.lower()))
        elif letter == "d":
            values["day"] = int(raw)
        elif letter == "D":
            values["yday"] = int(raw)
        elif letter in "Hk":
            values["hour"] = int(raw) % 24
        elif letter in "hK":
            values["hour12"] = int(raw) % 12
        elif letter == "a":
            values["pm"] = raw.upper() == "PM"
        elif letter == "m":
            values["minute"] = int(raw)
        elif letter == "s":
            values["second"] = int(raw)
        elif letter == "S":
            values["micro"] = int(raw.ljust(6, "0")[:6])
        elif letter == "n":
            values["micro"] = int(raw) // 1000
        elif letter in "OXxZVzv":
            values["tz"] = zone(raw)
    return _assemble(values, text, fmt, tz)


def _assemble(values: dict[str, Any], text: str, fmt: str, tz: tzinfo) -> datetime:
    if "year" not in values or not ({"month", "day"} <= values.keys() or "yday" in values):
        raise TemplateError(f"cannot parse date '{text}' with format '{fmt}': it has no full date")
    try:
        if "yday" in values and "month" not in values:
            day = date(values["year"], 1, 1) + timedelta(days=values["yday"] - 1)
        else:
            day = date(values["year"], values["month"], values["day"])
        hour = values.get("hour", 0)
        if "hour12" in values:
            hour = values["hour12"] + (12 if values.get("pm") else 0)
        clock = time(hour, values.get("minute", 0), values.get("second", 0), values.get("micro", 0))
    except ValueError as exc:
        raise TemplateError(f"cannot parse date '{text}' with format '{fmt}': {exc}") from None
    return datetime.combine(day, clock, values.get("tz", tz))
