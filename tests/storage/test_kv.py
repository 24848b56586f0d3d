from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kray.context import KVStore as KVStoreProtocol
from kray.errors import KrayError
from kray.storage.kv import KVError, KVStore, coerce, format_duration
from kray.storage.repository import Repository

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kv(repo: Repository, clock: Clock) -> KVStore:
    return KVStore(repo, clock=clock)


def test_implements_the_context_protocol(kv: KVStore) -> None:
    store: KVStoreProtocol = kv
    assert store.set("ns", "k", 1) is True


def test_set_get_delete(kv: KVStore) -> None:
    assert kv.get("company.team", "missing") is None
    assert kv.set("company.team", "my_key", "hello") is True
    assert kv.get("company.team", "my_key") == "hello"
    assert kv.get("other", "my_key") is None  # namespaces are separate
    assert kv.delete("company.team", "my_key") is True
    assert kv.delete("company.team", "my_key") is False
    assert kv.get("company.team", "my_key") is None


@pytest.mark.parametrize("value, kv_type, stored", [
    ("text", "STRING", "text"),
    (42, "NUMBER", 42),
    (2.5, "NUMBER", 2.5),
    (True, "BOOLEAN", True),
    (False, "BOOLEAN", False),
    ({"a": [1, {"b": None}]}, "JSON", {"a": [1, {"b": None}]}),
    ([1, "two"], "JSON", [1, "two"]),
    (datetime(2024, 3, 1, 12, 30, tzinfo=UTC), "DATETIME",
     "2024-03-01T12:30:00+00:00"),
    (date(2024, 3, 1), "DATE", "2024-03-01"),
    (timedelta(hours=1, minutes=30), "DURATION", "PT1H30M"),
])
def test_types_are_inferred(kv: KVStore, value: Any, kv_type: str, stored: Any) -> None:
    kv.set("ns", "k", value)
    entry = kv.get_entry("ns", "k")
    assert entry is not None
    assert (entry["type"], entry["value"]) == (kv_type, stored)
    assert kv.get("ns", "k") == stored


@pytest.mark.parametrize("value, kv_type, stored", [
    ("12", "NUMBER", 12),
    (" -3 ", "number", -3),
    ("1.25", "NUMBER", 1.25),
    ("1e3", "NUMBER", 1000.0),
    ("TRUE", "BOOLEAN", True),
    ("false", "BOOLEAN", False),
    (12, "STRING", "12"),
    (True, "STRING", "true"),
    ('{"a": 1}', "JSON", {"a": 1}),
    ('"just a string"', "JSON", "just a string"),
    ("2024-03-01T12:30:00Z", "DATETIME", "2024-03-01T12:30:00+00:00"),
    ("2024-03-01T14:30:00+02:00", "DATETIME", "2024-03-01T14:30:00+02:00"),
    ("2024-03-01T12:30:00", "DATETIME", "2024-03-01T12:30:00+00:00"),
    (date(2024, 3, 1), "DATETIME", "2024-03-01T00:00:00+00:00"),
    ("2024-03-01", "DATE", "2024-03-01"),
    (datetime(2024, 3, 1, 23, 59), "DATE", "2024-03-01"),
    ("PT90M", "DURATION", "PT1H30M"),
    ("P2DT3H", "DURATION", "P2DT3H"),
    ("pt0.5s", "DURATION", "PT0.5S"),
    ("-PT5M", "DURATION", "-PT5M"),
    (90, "DURATION", "PT1M30S"),
])
def test_given_type_coerces(kv: KVStore, value: Any, kv_type: str, stored: Any) -> None:
    kv.set("ns", "k", value, kv_type=kv_type)
    entry = kv.get_entry("ns", "k")
    assert entry is not None
    assert (entry["type"], entry["value"]) == (kv_type.upper(), stored)


@pytest.mark.parametrize("value, kv_type", [
    ("twelve", "NUMBER"), (True, "NUMBER"), ("nan", "NUMBER"), (float("inf"), None),
    ("yes", "BOOLEAN"), (1, "BOOLEAN"), ({"a": 1}, "STRING"), ("{not json", "JSON"),
    ({"x": float("nan")}, "JSON"), ("yesterday", "DATETIME"), (3, "DATETIME"),
    ("2024-13-01", "DATE"), ("1 hour", "DURATION"), ("P", "DURATION"), ("PT", "DURATION"),
    ("x", "COLOR"), (None, None), ({1, 2}, None), (object(), "JSON"),
])
def test_bad_values_are_refused_clearly(kv: KVStore, value: Any, kv_type: str | None) -> None:
    with pytest.raises(KVError) as info:
        kv.set("ns", "k", value, kv_type=kv_type)
    assert isinstance(info.value, KrayError)
    assert str(info.value)
    assert kv.get("ns", "k") is None


def test_ttl_with_injected_clock(kv: KVStore, clock: Clock) -> None:
    kv.set("ns", "short", "v", ttl_seconds=60)
    kv.set("ns", "forever", "v")
    entry = kv.get_entry("ns", "short")
    assert entry is not None and entry["expiresAt"] == "2024-01-01T00:01:00+00:00"
    assert entry["updated"] == "2024-01-01T00:00:00+00:00"
    clock.advance(59.9)
    assert kv.get("ns", "short") == "v"
    clock.advance(0.1)
    assert kv.get("ns", "short") is None  # expired exactly at expiresAt
    assert kv.get_entry("ns", "short") is None
    assert kv.keys("ns") == ["forever"]
    assert [e["key"] for e in kv.entries("ns")] == ["forever"]
    assert kv.delete("ns", "short") is False  # expired reads as absent
    kv.set("ns", "again", 1, ttl_seconds=1)
    clock.advance(2)
    assert kv.purge_expired() == 1
    assert kv.get("ns", "forever") == "v"


def test_overwrite_false(kv: KVStore, clock: Clock) -> None:
    assert kv.set("ns", "k", "first", ttl_seconds=10) is True
    assert kv.set("ns", "k", "second", overwrite=False) is False
    assert kv.get("ns", "k") == "first"
    assert kv.set("ns", "k", "third") is True  # overwrite is the default
    assert kv.get("ns", "k") == "third"
    assert kv.get_entry("ns", "k")["expiresAt"] is None  # type: ignore[index]
    kv.set("ns", "t", "old", ttl_seconds=5)
    clock.advance(5)
    assert kv.set("ns", "t", "new", overwrite=False) is True  # an expired key is free
    assert kv.get("ns", "t") == "new"


def test_keys_with_prefix(kv: KVStore) -> None:
    for key in ("b.two", "a-one", "b.one", "c", "b_other"):
        kv.set("ns", key, 1)
    kv.set("other", "b.zzz", 1)
    assert kv.keys("ns") == ["a-one", "b.one", "b.two", "b_other", "c"]
    assert kv.keys("ns", "b.") == ["b.one", "b.two"]
    assert kv.keys("ns", "b") == ["b.one", "b.two", "b_other"]
    assert kv.keys("ns", "%") == [] and kv.keys("ns", "_") == []  # not LIKE patterns
    assert kv.keys("empty") == []


def test_entries(kv: KVStore) -> None:
    kv.set("ns", "n", 5)
    kv.set("ns", "d", date(2024, 1, 2), ttl_seconds=3600)
    assert kv.entries("ns") == [
        {"key": "d", "type": "DATE", "value": "2024-01-02",
         "expiresAt": "2024-01-01T01:00:00+00:00", "updated": "2024-01-01T00:00:00+00:00"},
        {"key": "n", "type": "NUMBER", "value": 5, "expiresAt": None,
         "updated": "2024-01-01T00:00:00+00:00"},
    ]


@pytest.mark.parametrize("key", ["", ".hidden", "-x", "_x", "a b", "a/b", "a:b", "é", "a\x00",
                                 "x" * 256, "a'; DROP TABLE kv; --"])
def test_bad_keys_are_refused(kv: KVStore, key: str) -> None:
    for call in (lambda: kv.set("ns", key, 1), lambda: kv.get("ns", key),
                 lambda: kv.delete("ns", key)):
        with pytest.raises(KVError, match="invalid KV key"):
            call()


def test_bad_namespace_is_refused(kv: KVStore) -> None:
    with pytest.raises(KVError, match="invalid KV namespace"):
        kv.set("../ns", "k", 1)
    with pytest.raises(KVError, match="invalid KV namespace"):
        kv.keys("")


@pytest.mark.parametrize("ttl", [0, -1, True, float("nan")])
def test_bad_ttl_is_refused(kv: KVStore, ttl: Any) -> None:
    with pytest.raises(KVError, match="ttl_seconds"):
        kv.set("ns", "k", 1, ttl_seconds=ttl)


def test_values_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "kv.duckdb"
    with Repository(path) as repo:
        KVStore(repo).set("ns", "k", {"deep": [1, 2, 3]}, kv_type="JSON")
    with Repository(path) as repo:
        assert KVStore(repo).get("ns", "k") == {"deep": [1, 2, 3]}


def test_default_clock_is_real_time(repo: Repository) -> None:
    kv = KVStore(repo)
    kv.set("ns", "k", 1, ttl_seconds=3600)
    entry = kv.get_entry("ns", "k")
    assert entry is not None
    updated = datetime.fromisoformat(entry["updated"])
    assert abs((updated - datetime.now(UTC)).total_seconds()) < 60


def test_naive_clock_is_taken_as_utc(repo: Repository) -> None:
    kv = KVStore(repo, clock=lambda: datetime(2024, 1, 1))
    kv.set("ns", "k", 1, ttl_seconds=1)
    assert kv.get_entry("ns", "k")["expiresAt"] == "2024-01-01T00:00:01+00:00"  # type: ignore


@pytest.mark.parametrize("delta, text", [
    (timedelta(0), "PT0S"), (timedelta(seconds=1.5), "PT1.5S"), (timedelta(days=1), "P1D"),
    (timedelta(days=1, seconds=1), "P1DT1S"), (timedelta(minutes=-5), "-PT5M"),
    (timedelta(hours=25, microseconds=10), "P1DT1H0.00001S"),
])
def test_format_duration(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert coerce(text, "DURATION") == ("DURATION", text)


def test_coerce_is_usable_alone() -> None:
    convert: Callable[[Any, str | None], tuple[str, Any]] = coerce
    assert convert("7", "NUMBER") == ("NUMBER", 7)
