"""Kestra's template functions: ``now()``, ``json()``, ``secret()``, ``kv()``, ``render()``...

Functions backed by I/O (secrets, KV, files, logs) call the ``TemplateServices`` passed to the
render in progress; without one they raise ``TemplateError("secret() is not available here")``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from jinja2 import pass_context
from jinja2.runtime import Context

from kray.errors import TemplateError
from kray.templating import dates
from kray.templating.values import CURRENT, fail_if_undefined, to_json

if TYPE_CHECKING:
    from kray.templating.engine import TemplateEngine

MAX_RENDER_PASSES = 10


def _service(function: str, method: str) -> Callable[..., Any]:
    state = CURRENT.get()
    impl = getattr(state.services, method, None) if state is not None else None
    if impl is None:
        raise TemplateError(f"{function}() is not available here")
    return impl  # type: ignore[no-any-return]


def _defined(*values: Any) -> None:
    for value in values:
        fail_if_undefined(value)


def _parse_json(json_text: Any = None, **kwargs: Any) -> Any:
    value = kwargs.pop("json", json_text)  # Kestra's argument name
    _defined(value)
    if value is None or not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise TemplateError(f"json(): the value is not valid JSON ({exc})") from None


def _parse_yaml(yaml_text: Any = None, **kwargs: Any) -> Any:
    value = kwargs.pop("yaml", yaml_text)  # Kestra's argument name
    _defined(value)
    if value is None or not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise TemplateError(f"yaml(): the value is not valid YAML ({exc})") from None


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    def extreme(*values: Any) -> Any:
        _defined(*values)
        items = list(values[0]) if len(values) == 1 and isinstance(values[0], (list, tuple)) \
            else list(values)
        if not items:
            raise TemplateError(f"{pick.__name__}() needs at least one value")
        return pick(items)
    return extreme


def functions(engine: TemplateEngine) -> dict[str, Callable[..., Any]]:
    """Every function, bound to ``engine`` (clock, default zone, limits, nested rendering)."""

    def now(timeZone: str | None = None, format: str | None = None, **_: Any) -> Any:
        """An aware datetime in ``timeZone`` (default: the engine's); a string if ``format``."""
        _defined(timeZone, format)
        moment = engine.now().astimezone(dates.zone(timeZone, engine.timezone))
        return dates.format_datetime(moment, format) if format else moment

    def range_(start: int, end: int | None = None, increment: int = 1) -> list[int]:
        """Pebble's ``range(start, end, increment)`` includes ``end``; ``range(n)`` is 0..n-1."""
        _defined(start, end, increment)
        if end is None:
            start, end = 0, int(start) - 1
        if not increment:
            raise TemplateError("range() increment cannot be 0")
        stop = int(end) + (1 if increment > 0 else -1)
        return engine.bounded_range(int(start), stop, int(increment))

    def random_int(lower: int, upper: int) -> int:
        _defined(lower, upper)
        if int(upper) < int(lower):
            raise TemplateError("randomInt(): upper is less than lower")
        if int(upper) == int(lower):
            return int(lower)
        return random.randrange(int(lower), int(upper))

    @pass_context
    def render(context: Context, toRender: Any, recursive: bool = True) -> Any:
        """Render a string again against the current variables (``render(vars.x)``)."""
        _defined(toRender, recursive)
        if not isinstance(toRender, str):
            return toRender
        variables = context.get_all()
        text = toRender
        for _ in range(MAX_RENDER_PASSES):
            out = engine.render_nested(text, variables)
            if not recursive or out == text:
                return out
            text = out
        raise TemplateError(f"render(): the value still changes after {MAX_RENDER_PASSES} passes")

    @pass_context
    def render_once(context: Context, toRender: Any) -> Any:
        return render(context, toRender, recursive=False)

    def secret(key: Any) -> str:
        _defined(key)
        return _service("secret", "secret")(str(key))  # type: ignore[no-any-return]

    def kv(key: Any, namespace: Any = None, errorOnMissing: bool = True) -> Any:
        _defined(key, namespace, errorOnMissing)
        return _service("kv", "kv")(str(key), None if namespace is None else str(namespace),
                                    bool(errorOnMissing))

    def file_call(function: str, method: str) -> Callable[[Any], Any]:
        def call(path: Any) -> Any:
            _defined(path)
            if path is None:
                raise TemplateError(f"{function}() needs a path")
            return _service(function, method)(str(path))
        call.__name__ = function
        return call

    def is_file_empty(path: Any) -> bool:
        return file_call("isFileEmpty", "file_size")(path) == 0  # type: ignore[no-any-return]

    def error_logs() -> list[dict[str, Any]]:
        return _service("errorLogs", "error_logs")()  # type: ignore[no-any-return]

    def to_json_function(value: Any) -> str:
        return to_json(value)

    return {
        "now": now, "range": range_, "randomInt": random_int, "uuid": lambda: str(uuid.uuid4()),
        "json": _parse_json, "fromJson": _parse_json, "jsonDecode": _parse_json,
        "toJson": to_json_function, "yaml": _parse_yaml, "fromYaml": _parse_yaml,
        "max": _extreme(max), "min": _extreme(min),
        "render": render, "renderOnce": render_once, "secret": secret, "kv": kv,
        "read": file_call("read", "read"), "fileURI": file_call("fileURI", "file_uri"),
        "fileSize": file_call("fileSize", "file_size"),
        "fileExists": file_call("fileExists", "file_exists"), "isFileEmpty": is_file_empty,
        "errorLogs": error_logs,
    }
