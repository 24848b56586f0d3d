"""date / dateAdd / timestamp filters with Java DateTimeFormatter patterns."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from kray.errors import TemplateError
from kray.templating import TemplateEngine, dates

WHEN = datetime(2024, 3, 5, 14, 7, 9, 123456, tzinfo=timezone.utc)  # a Tuesday


@pytest.mark.parametrize(("pattern", "expected"), [
    ("yyyy-MM-dd", "2024-03-05"),
    ("yy/M/d", "24/3/5"),
    ("MMM MMMM", "Mar March"),
    ("dd.MM.yyyy HH:mm:ss", "05.03.2024 14:07:09"),
    ("H:m:s", "14:7:9"),
    ("hh:mm a", "02:07 PM"),
    ("h a K k", "2 PM 2 14"),
    ("SSS|SSSSSS|SSSSSSSSS|S", "123|123456|123456000|1"),
    ("EEE EEEE E", "Tue Tuesday Tue"),
    ("XXX|XX|X|xxx|Z|ZZZZZ|ZZZZ|O", "Z|Z|Z|+00:00|+0000|Z|GMT|GMT"),
    ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2024-03-05T14:07:09.123Z"),
    ("'Week' w 'of' Y, 'day' D, Q QQQ", "Week 10 of 2024, day 65, 1 Q1"),
    ("'It''s' h 'o''clock'", "It's 2 o'clock"),
    ("''", "'"),
    ("yyyy[-MM]", "2024-03"),
    ("VV z", "Z UTC"),  # the default zone is a fixed offset (Java ZoneOffset.UTC)
    ("n A", "123456000 50829123"),
    ("G u", "AD 2024"),
])
def test_java_patterns(engine, pattern, expected):
    assert engine.render("{{ d | date(p) }}", {"d": WHEN, "p": pattern}) == expected


@pytest.mark.parametrize(("zone", "pattern", "expected"), [
    ("Europe/Paris", "yyyy-MM-dd HH:mm XXX z VV", "2024-03-05 15:07 +01:00 CET Europe/Paris"),
    ("America/New_York", "HH:mm Z xxx O", "09:07 -0500 -05:00 GMT-5"),
    ("Asia/Kolkata", "HH:mm XXX XX X OOOO", "19:37 +05:30 +0530 +0530 GMT+05:30"),
    ("+02:00", "HH:mm XXX VV", "16:07 +02:00 +02:00"),
    ("UTC", "HH:mm XXX", "14:07 Z"),
])
def test_time_zones(engine, zone, pattern, expected):
    template = "{{ d | date(p, timeZone=z) }}"
    assert engine.render(template, {"d": WHEN, "p": pattern, "z": zone}) == expected


def test_summer_time(engine):
    summer = datetime(2024, 7, 1, 12, tzinfo=timezone.utc)
    assert engine.render("{{ d | date('HH:mm z XXX', timeZone='Europe/Paris') }}",
                         {"d": summer}) == "14:00 CEST +02:00"


@pytest.mark.parametrize(("fmt", "expected"), [
    (None, "2024-03-05T14:07:09.123456Z"),
    ("iso", "2024-03-05T14:07:09.123456Z"),
    ("iso_sec", "2024-03-05T14:07:09Z"),
    ("iso_milli", "2024-03-05T14:07:09.123Z"),
    ("sql", "2024-03-05 14:07:09.123456"),
    ("sql_seq", "2024-03-05 14:07:09"),
    ("iso_date", "2024-03-05Z"),
    ("iso_local_date", "2024-03-05"),
    ("iso_date_time", "2024-03-05T14:07:09.123456Z"),
    ("iso_local_date_time", "2024-03-05T14:07:09.123456"),
    ("iso_instant", "2024-03-05T14:07:09.123456Z"),
    ("iso_time", "14:07:09.123456Z"),
    ("iso_week_date", "2024-W10-2Z"),
    ("rfc_1123_date_time", "Tue, 5 Mar 2024 14:07:09 GMT"),
])
def test_named_formats(engine, fmt, expected):
    template = "{{ d | date }}" if fmt is None else "{{ d | date(f) }}"
    assert engine.render(template, {"d": WHEN, "f": fmt}) == expected


def test_named_formats_with_a_region_zone(engine):
    rendered = engine.render("{{ d | date('iso_date_time', timeZone='Europe/Paris') }}",
                             {"d": WHEN})
    assert rendered == "2024-03-05T15:07:09.123456+01:00[Europe/Paris]"
    assert engine.render("{{ d | date('iso_sec', timeZone='Europe/Paris') }}",
                         {"d": WHEN}) == "2024-03-05T15:07:09+01:00"


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-03-05T14:07:09Z", "2024-03-05 14:07:09"),
    ("2024-03-05T14:07:09.5+02:00", "2024-03-05 12:07:09"),  # converted to the target zone
    ("2024-03-05T14:07:09", "2024-03-05 14:07:09"),  # no offset: read in the target zone
    ("2024-03-05", "2024-03-05 00:00:00"),  # a bare date: start of day
    ("2024-03-05T15:07:09+01:00[Europe/Paris]", "2024-03-05 14:07:09"),
    ("2024-03-05T14:07:09.123456789Z", "2024-03-05 14:07:09"),
    (1709647629, "2024-03-05 14:07:09"),  # epoch seconds
    (1709647629123, "2024-03-05 14:07:09"),  # epoch milliseconds
    (date(2024, 3, 5), "2024-03-05 12:00:00"),  # a date object: noon, like Java's LocalDate
    (datetime(2024, 3, 5, 14, 7, 9), "2024-03-05 14:07:09"),  # naive: in the target zone
])
def test_date_inputs(engine, value, expected):
    assert engine.render("{{ d | date('yyyy-MM-dd HH:mm:ss') }}", {"d": value}) == expected


def test_naive_inputs_use_the_given_time_zone(engine):
    assert engine.render("{{ '2024-03-05T10:00:00' | date('HH:mm XXX', timeZone='Europe/Paris') }}",
                         {}) == "10:00 +01:00"


@pytest.mark.parametrize(("value", "existing", "expected"), [
    ("05/03/2024 14:07", "dd/MM/yyyy HH:mm", "2024-03-05T14:07:00Z"),
    ("2024-03-05 02:07 PM", "yyyy-MM-dd hh:mm a", "2024-03-05T14:07:00Z"),
    ("20240305", "yyyyMMdd", "2024-03-05T00:00:00Z"),
    ("5 March 24", "d MMMM yy", "2024-03-05T00:00:00Z"),
    ("Tue, 5 Mar 2024 14:07:09 +0100", "EEE, d MMM yyyy HH:mm:ss Z", "2024-03-05T13:07:09Z"),
    ("2024-03-05T14:07:09.123+01:00", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2024-03-05T13:07:09Z"),
    ("2024-03-05 14:07:09 Europe/Paris", "yyyy-MM-dd HH:mm:ss VV", "2024-03-05T13:07:09Z"),
    ("2024-065", "yyyy-DDD", "2024-03-05T00:00:00Z"),
    ("2024-03-05 14:07:09", "sql_seq", "2024-03-05T14:07:09Z"),
])
def test_existing_format(engine, value, existing, expected):
    template = "{{ v | date('iso_sec', existingFormat=e) }}"
    assert engine.render(template, {"v": value, "e": existing}) == expected


@pytest.mark.parametrize(("value", "existing", "message"), [
    ("2024/03/05", "yyyy-MM-dd", "cannot parse date '2024/03/05' with format 'yyyy-MM-dd'"),
    ("14:07", "HH:mm", "has no full date"),
    ("2024-02-30", "yyyy-MM-dd", "day is out of range"),
])
def test_existing_format_errors(engine, value, existing, message):
    with pytest.raises(TemplateError, match=message):
        engine.render("{{ v | date('iso', existingFormat=e) }}", {"v": value, "e": existing})


@pytest.mark.parametrize(("template", "message"), [
    ("{{ 'yesterday' | date('yyyy') }}", "cannot parse date 'yesterday'"),
    ("{{ d | date('yyyy', timeZone='Mars/Olympus') }}", "unknown time zone 'Mars/Olympus'"),
    ("{{ d | date('yyyy-ll') }}", "unknown pattern letter 'l'"),
    ("{{ d | date(\"'open\") }}", "unterminated quote"),
    ("{{ d | date('yyyy#') }}", "reserved character '#'"),
    ("{{ d | dateAdd(1, 'FORTNIGHTS') }}", "unknown dateAdd unit 'FORTNIGHTS'"),
    ("{{ true | date('yyyy') }}", "cannot use True as a date"),
    ("{{ d | date('V') }}", "'VV'"),
])
def test_date_errors(engine, template, message):
    with pytest.raises(TemplateError, match=message):
        engine.render(template, {"d": WHEN})


@pytest.mark.parametrize(("amount", "unit", "expected"), [
    (1, "DAYS", "2024-03-06T14:07:09Z"),
    (-1, "DAYS", "2024-03-04T14:07:09Z"),
    (2, "WEEKS", "2024-03-19T14:07:09Z"),
    (3, "HOURS", "2024-03-05T17:07:09Z"),
    (-90, "MINUTES", "2024-03-05T12:37:09Z"),
    (51, "SECONDS", "2024-03-05T14:08:00Z"),
    (1, "MONTHS", "2024-04-05T14:07:09Z"),
    (-1, "YEARS", "2023-03-05T14:07:09Z"),
    (1, "HALF_DAYS", "2024-03-06T02:07:09Z"),
    (1, "days", "2024-03-06T14:07:09Z"),
])
def test_date_add(engine, amount, unit, expected):
    template = "{{ d | dateAdd(a, u, 'iso_sec') }}"
    assert engine.render(template, {"d": WHEN, "a": amount, "u": unit}) == expected


def test_date_add_details(engine):
    assert engine.render("{{ '2024-01-31' | dateAdd(1, 'MONTHS', 'yyyy-MM-dd') }}",
                         {}) == "2024-02-29"
    assert engine.render("{{ d | dateAdd(1500, 'MILLIS', 'HH:mm:ss.SSS') }}", {"d": WHEN}) == \
        "14:07:10.623"
    assert engine.render("{{ d | dateAdd(-1, 'DAYS') }}", {"d": WHEN}) == \
        "2024-03-04T14:07:09.123456Z"  # default format: iso
    # Across the spring-forward night in Paris: a day keeps the wall clock, 24 hours do not.
    before = "2024-03-30T12:00:00+01:00[Europe/Paris]"
    day = "{{ d | dateAdd(1, 'DAYS', 'HH:mm XXX', timeZone='Europe/Paris') }}"
    hours = "{{ d | dateAdd(24, 'HOURS', 'HH:mm XXX', timeZone='Europe/Paris') }}"
    assert engine.render(day, {"d": before}) == "12:00 +02:00"
    assert engine.render(hours, {"d": before}) == "13:00 +02:00"
    assert engine.render("{{ now() | dateAdd(-1, 'DAYS', 'yyyy-MM-dd') }}", {}) == "2024-03-14"


def test_timestamps(engine):
    data = {"d": WHEN}
    assert engine.evaluate("{{ d | timestamp }}", data) == 1709647629
    assert engine.evaluate("{{ d | timestampMilli }}", data) == 1709647629123
    assert engine.evaluate("{{ d | timestampMicro }}", data) == 1709647629123456
    assert engine.evaluate("{{ d | timestampNano }}", data) == 1709647629123456000
    assert engine.evaluate("{{ '1970-01-01T00:00:10Z' | timestamp }}", data) == 10
    assert engine.evaluate("{{ '2024-03-05T10:00:00' | timestamp(timeZone='Europe/Paris') }}",
                           data) == 1709629200


def test_engine_default_time_zone():
    engine = TemplateEngine(timezone="America/New_York")
    assert engine.render("{{ d | date('yyyy-MM-dd HH:mm XXX') }}", {"d": WHEN}) == \
        "2024-03-05 09:07 -05:00"
    with pytest.raises(TemplateError, match="unknown time zone"):
        TemplateEngine(timezone="Nowhere/Land")


def test_zone_parsing():
    assert dates.zone("GMT+2").utcoffset(None).total_seconds() == 7200  # type: ignore[union-attr]
    assert dates.zone("-05:30").utcoffset(None).total_seconds() == -19800  # type: ignore[union-attr]
    assert dates.zone("Z") is timezone.utc
    assert dates.zone_id(dates.zone("Europe/Paris")) == "Europe/Paris"
