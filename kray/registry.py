"""The plugin registry: task type names -> task classes, and the known trigger types.

A plugin's identity is its ``type`` string, never its class path: a class registers under its
``type_name`` and each of its ``aliases`` (Kestra's names). The registry is an object passed
around; ``PluginRegistry.default()`` is the process-wide one, filled from the ``kray.plugins``
entry-point group. A plugin that fails to load is reported, never fatal.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel

from kray.errors import DuplicatePlugin, PluginNotFound
from kray.task import Task

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "kray.plugins"

#: Trigger types the engine knows before any plugin loads: kray's names, Kestra's names and
#: Kestra's older names. Plugins add theirs with ``PluginRegistry.register_trigger_type``.
KNOWN_TRIGGER_TYPES: frozenset[str] = frozenset({
    "kray.core.trigger.Schedule",
    "kray.core.trigger.Flow",
    "kray.core.trigger.Webhook",
    "io.kestra.plugin.core.trigger.Schedule",
    "io.kestra.plugin.core.trigger.Flow",
    "io.kestra.plugin.core.trigger.Webhook",
    "io.kestra.core.models.triggers.types.Schedule",
    "io.kestra.core.models.triggers.types.Flow",
    "io.kestra.core.models.triggers.types.Webhook",
})


def _builtin_trigger_models() -> dict[str, type[BaseModel]]:
    from kray.triggers.models import builtin_trigger_models
    return builtin_trigger_models()


def closest_names(name: str, candidates: Iterable[str], limit: int = 3,
                  group: Callable[[str], Any] | None = None) -> list[str]:
    """Up to ``limit`` candidates closest to ``name``, best first.

    A candidate qualifies when its last dotted segment is close to (or equal, ignoring case,
    to) the last segment of ``name``; qualified ones are ranked by that similarity plus the
    whole names' (difflib), so ``Log`` and ``io.kestra.plugin.core.log.Logg`` both find
    ``io.kestra.plugin.core.log.Log``.
    ``group`` maps each candidate to an identity (its class); only the best name of each
    identity is kept, so three aliases of one class don't crowd out the other suggestions.
    """
    tail = name.rsplit(".", 1)[-1].lower()
    scored: list[tuple[float, str]] = []
    for cand in candidates:
        full = difflib.SequenceMatcher(None, name.lower(), cand.lower()).ratio()
        cand_tail = cand.rsplit(".", 1)[-1].lower()
        if cand_tail == tail:
            tail_score = 1.0
        else:
            tail_score = difflib.SequenceMatcher(None, tail, cand_tail).ratio()
        # The last segment must look alike: a long shared package prefix alone is no match.
        if tail_score >= 0.6:
            scored.append((tail_score + full, cand))
    scored.sort(key=lambda s: (-s[0], s[1]))
    out: list[str] = []
    seen: set[Any] = set()
    for _, cand in scored:
        ident = group(cand) if group else cand
        if ident in seen:
            continue
        seen.add(ident)
        out.append(cand)
        if len(out) == limit:
            break
    return out


class PluginRegistry:
    """Task type names (canonical names and aliases) -> task classes; known trigger types."""

    _default: ClassVar[PluginRegistry | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._by_name: dict[str, type[Task]] = {}
        self._canonical: dict[str, type[Task]] = {}
        self._trigger_types: set[str] = set(KNOWN_TRIGGER_TYPES)
        self._trigger_models: dict[str, type[BaseModel]] = _builtin_trigger_models()
        self._trigger_types.update(self._trigger_models)  # realtime and polling types too
        self._loaded_entry_points: set[str] = set()

    # -- tasks ---------------------------------------------------------------------------------

    def register(self, cls: type[Task]) -> None:
        """Register ``cls`` under its ``type_name`` and each of its ``aliases``.

        Registering the same class again is a no-op; a name already taken by another class
        raises ``DuplicatePlugin`` (and nothing of ``cls`` is registered).
        """
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"{cls!r} is not a Task subclass")
        if not cls.type_name:
            raise ValueError(f"{cls.__qualname__} has no type_name")
        names = [cls.type_name, *cls.aliases]
        for name in names:
            taken = self._by_name.get(name)
            if taken is not None and taken is not cls:
                raise DuplicatePlugin(
                    f"type '{name}' of {cls.__module__}.{cls.__qualname__} is already "
                    f"registered by {taken.__module__}.{taken.__qualname__}")
        for name in names:
            self._by_name[name] = cls
        self._canonical[cls.type_name] = cls

    def resolve(self, type_name: str) -> type[Task]:
        """The class registered under ``type_name``; ``PluginNotFound`` with suggestions."""
        try:
            return self._by_name[type_name]
        except KeyError:
            raise PluginNotFound(type_name, self.suggest(type_name)) from None

    def suggest(self, type_name: str, limit: int = 3) -> list[str]:
        """Up to ``limit`` registered names closest to ``type_name``, one per class."""
        return closest_names(type_name, self._by_name, limit, group=self._by_name.__getitem__)

    def canonical(self) -> dict[str, type[Task]]:
        """Canonical ``type_name`` -> class (aliases left out)."""
        return dict(self._canonical)

    def names(self) -> list[str]:
        """Every registered task type name, aliases included, sorted."""
        return sorted(self._by_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._by_name

    # -- triggers ------------------------------------------------------------------------------

    def register_trigger_type(self, name: str, model: type[BaseModel] | None = None) -> None:
        """Make ``name`` a valid trigger ``type`` in flows validated with this registry; with
        ``model``, each trigger of this type is validated by it (every property, located)."""
        self._trigger_types.add(name)
        if model is not None:
            self._trigger_models[name] = model

    def trigger_model(self, name: str) -> type[BaseModel] | None:
        """The model that validates triggers of type ``name``, if one was registered."""
        return self._trigger_models.get(name)

    def is_trigger_type(self, name: str) -> bool:
        return name in self._trigger_types

    def trigger_types(self) -> frozenset[str]:
        return frozenset(self._trigger_types)

    def suggest_trigger_type(self, name: str, limit: int = 3) -> list[str]:
        return closest_names(name, self._trigger_types, limit)

    # -- loading -------------------------------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Call every ``register(registry)`` entry point of ``group`` with this registry.

        Returns one ``"name: error"`` line per plugin that failed to load (also logged as a
        warning). An entry point already loaded into this registry is skipped.
        """
        failures: list[str] = []
        for ep in entry_points(group=group):
            key = f"{group}:{ep.name}={ep.value}"
            if key in self._loaded_entry_points:
                continue
            self._loaded_entry_points.add(key)
            try:
                register = ep.load()
                register(self)
            except Exception as exc:  # a broken plugin must not take the engine down
                failure = f"{ep.name}: {type(exc).__name__}: {exc}"
                log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
                failures.append(failure)
        return failures

    @classmethod
    def default(cls) -> PluginRegistry:
        """The process-wide registry, built once: every ``kray.plugins`` entry point loaded.

        When the distribution's metadata is missing (running from a source tree), the core
        types are registered directly so that a bare checkout still knows them.
        """
        if cls._default is not None:
            return cls._default
        with cls._default_lock:
            if cls._default is None:
                registry = cls()
                registry.load_entry_points()
                names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
                if "core" not in names:
                    from kray.plugins import core

                    try:
                        core.register(registry)
                    except Exception as exc:
                        log.warning("core plugins failed to load: %s", exc)
                cls._default = registry
        return cls._default
