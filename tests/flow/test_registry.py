from __future__ import annotations

import logging
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest

import kray.registry as registry_module
from kray.errors import DuplicatePlugin, PluginNotFound
from kray.registry import KNOWN_TRIGGER_TYPES, PluginRegistry, closest_names
from kray.task import RunnableTask

from .tasks import Echo, Group, Shout, make_registry


class OtherEcho(RunnableTask):
    type_name: ClassVar[str] = "other.Echo"
    aliases: ClassVar[tuple[str, ...]] = ("io.test.plugin.core.Echo",)  # taken by Echo


class Logger(RunnableTask):
    type_name: ClassVar[str] = "kray.test.log.Log"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.log.Log",
                                          "io.kestra.core.tasks.log.Log")


class Logs(RunnableTask):
    type_name: ClassVar[str] = "kray.test.log.Logs"


class Dag(RunnableTask):
    type_name: ClassVar[str] = "kray.test.flow.Dag"


def test_register_under_name_and_aliases() -> None:
    reg = make_registry()
    assert reg.resolve("test.core.Echo") is Echo
    assert reg.resolve("io.test.plugin.core.Echo") is Echo
    assert reg.canonical()["test.core.Echo"] is Echo
    assert "io.test.plugin.core.Echo" not in reg.canonical()
    assert "io.test.plugin.core.Echo" in reg.names()
    assert "test.core.Echo" in reg


def test_registering_the_same_class_twice_is_a_no_op() -> None:
    reg = make_registry()
    reg.register(Echo)
    assert reg.resolve("test.core.Echo") is Echo


def test_a_name_taken_by_another_class_raises_and_registers_nothing() -> None:
    reg = make_registry()
    with pytest.raises(DuplicatePlugin, match="io.test.plugin.core.Echo"):
        reg.register(OtherEcho)
    assert "other.Echo" not in reg
    assert reg.resolve("io.test.plugin.core.Echo") is Echo


def test_register_refuses_non_tasks_and_nameless_tasks() -> None:
    reg = PluginRegistry()
    with pytest.raises(TypeError):
        reg.register(dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="type_name"):
        reg.register(RunnableTask)


@pytest.fixture
def log_registry() -> PluginRegistry:
    reg = make_registry()
    for cls in (Logger, Logs, Dag):
        reg.register(cls)
    return reg


def test_unknown_type_suggests_by_last_segment(log_registry: PluginRegistry) -> None:
    with pytest.raises(PluginNotFound) as info:
        log_registry.resolve("Log")
    assert info.value.type_name == "Log"
    # One name per class: the alias spelled most like the query.
    assert info.value.suggestions == ["kray.test.log.Log", "kray.test.log.Logs"]
    assert str(info.value) == ("unknown type 'Log'; did you mean kray.test.log.Log, "
                               "kray.test.log.Logs?")


def test_unknown_type_suggests_by_whole_name(log_registry: PluginRegistry) -> None:
    with pytest.raises(PluginNotFound) as info:
        log_registry.resolve("io.kestra.plugin.core.log.Logg")
    assert info.value.suggestions[0] == "io.kestra.plugin.core.log.Log"
    assert "kray.test.flow.Dag" not in info.value.suggestions


def test_unknown_type_with_nothing_close_has_no_suggestion(log_registry: PluginRegistry) -> None:
    with pytest.raises(PluginNotFound) as info:
        log_registry.resolve("io.kestra.plugin.jdbc.duckdb.Query")
    assert info.value.suggestions == []
    assert str(info.value) == "unknown type 'io.kestra.plugin.jdbc.duckdb.Query'"


def test_closest_names_limit_and_case() -> None:
    names = ["a.Alpha", "b.alpha", "c.Alphas", "d.Alphabet", "e.Beta"]
    assert closest_names("ALPHA", names) == ["a.Alpha", "b.alpha", "c.Alphas"]
    assert closest_names("ALPHA", names, limit=1) == ["a.Alpha"]


def test_trigger_types() -> None:
    reg = PluginRegistry()
    assert "io.kestra.plugin.core.trigger.Schedule" in KNOWN_TRIGGER_TYPES
    assert reg.is_trigger_type("kray.core.trigger.Webhook")
    assert reg.is_trigger_type("io.kestra.core.models.triggers.types.Flow")
    assert not reg.is_trigger_type("acme.trigger.Poll")
    reg.register_trigger_type("acme.trigger.Poll")
    assert reg.is_trigger_type("acme.trigger.Poll")
    assert not PluginRegistry().is_trigger_type("acme.trigger.Poll")  # per registry
    assert reg.suggest_trigger_type("io.kestra.plugin.core.trigger.Schedul")[0] == (
        "io.kestra.plugin.core.trigger.Schedule")


# -- entry points ------------------------------------------------------------------------------

def register_echo(registry: PluginRegistry) -> None:
    registry.register(Echo)


def register_broken(registry: PluginRegistry) -> None:
    raise RuntimeError("boom")


def register_shout(registry: PluginRegistry) -> None:
    registry.register(Shout)
    registry.register(Group)


def _eps(*pairs: tuple[str, str]) -> list[EntryPoint]:
    return [EntryPoint(name, f"{__name__}:{func}", "kray.plugins") for name, func in pairs]


def test_load_entry_points_reports_failures_and_goes_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    eps = [*_eps(("good", "register_echo"), ("broken", "register_broken")),
           EntryPoint("missing", "kray_no_such_module:register", "kray.plugins"),
           *_eps(("later", "register_shout"))]
    seen: list[str] = []

    def fake_entry_points(group: str) -> list[EntryPoint]:
        seen.append(group)
        return eps

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    reg = PluginRegistry()
    with caplog.at_level(logging.WARNING, logger="kray.registry"):
        failures = reg.load_entry_points()
    assert seen == ["kray.plugins"]
    assert len(failures) == 2
    assert failures[0] == "broken: RuntimeError: boom"
    assert failures[1].startswith("missing: ModuleNotFoundError")
    assert reg.resolve("test.core.Echo") is Echo
    assert reg.resolve("test.core.Shout") is Shout  # loaded after the failures
    assert "broken" in caplog.text and "missing" in caplog.text
    # Loading again does not call the same entry points twice (no DuplicatePlugin either way).
    assert reg.load_entry_points() == []


def register_other_echo(registry: PluginRegistry) -> None:
    registry.register(OtherEcho)


def test_load_entry_points_duplicate_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "entry_points", lambda group: _eps(
        ("good", "register_echo"), ("other", "register_other_echo")))
    reg = PluginRegistry()
    failures = reg.load_entry_points()
    assert len(failures) == 1 and failures[0].startswith("other: DuplicatePlugin")
    assert reg.resolve("io.test.plugin.core.Echo") is Echo


def test_default_is_built_once_with_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PluginRegistry, "_default", None)
    first = PluginRegistry.default()
    assert PluginRegistry.default() is first
    if "kray.core.log.Log" not in first:
        pytest.skip("the core Log type is not registered yet (plugins/core being written)")
    assert first.resolve("io.kestra.plugin.core.log.Log") is first.resolve("kray.core.log.Log")


def test_default_falls_back_to_core_without_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    import kray.plugins.core as core

    monkeypatch.setattr(PluginRegistry, "_default", None)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [])
    monkeypatch.setattr(core, "register", lambda registry: calls.append(registry))
    reg = PluginRegistry.default()
    assert calls == [reg]
