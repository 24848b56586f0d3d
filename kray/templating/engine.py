"""The template engine: Kestra's Pebble expressions on Jinja2's sandbox.

``TemplateEngine.render("{{ outputs.t1.value ?? 'none' }}", variables)`` renders a flow
property. Templates are compiled once and kept in an LRU cache keyed by their source. That is
safe, and bounded, because only flow definitions are ever compiled as templates, never user data
(inputs, KV values, webhook bodies and task outputs are variables, not templates): the set of
sources is the set of flow revisions' strings.

Every failure (syntax, undefined variable, bad filter argument, sandbox violation, output too
large, render too slow) raises ``kray.errors.TemplateError``; a syntax or runtime error in a
multi-line template names its 1-based line (also set as the error's ``line`` attribute).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Protocol

from jinja2 import TemplateError as JinjaError
from jinja2 import TemplateSyntaxError, UndefinedError, nodes
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kray.errors import KrayError, TemplateError
from kray.templating import dates
from kray.templating.filters import FILTERS, TESTS, date_filters
from kray.templating.functions import functions
from kray.templating.pebble import (
    PebbleCodeGenerator,
    PebbleLexer,
    PebbleParser,
    preprocess,
)
from kray.templating.values import (
    CURRENT,
    KrayUndefined,
    MapEntry,
    RenderState,
    check_defined,
    fail_if_undefined,
    stringify,
)

_RESULT = "kray_result__"
_MAX_NESTING = 8
_PEBBLE_LOOP = {"index": "index0", "revindex": "revindex0"}  # Pebble's loop indexes are 0-based
_MAP_METHODS = frozenset({"items", "keys", "values", "get"})
_ALLOWED_CALLS = frozenset({"caller", "super", "loop"})


class TemplateServices(Protocol):
    """I/O-backed template functions, supplied by the caller for one render."""

    def secret(self, name: str) -> str: ...
    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> Any: ...
    def read(self, path: str) -> str: ...  # a kray:// URI or a namespace file path
    def file_size(self, path: str) -> int: ...
    def file_exists(self, path: str) -> bool: ...
    def file_uri(self, path: str) -> str: ...
    def error_logs(self) -> list[dict[str, Any]]: ...


def has_markers(text: str) -> bool:
    """Whether a string could be a template at all (else it renders to itself)."""
    return "{{" in text or "{%" in text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _preview(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} keys)" if len(keys) > limit else "")


class KrayEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with Pebble's syntax and Kestra's filters and functions.

    The ``kray_*`` methods are called by the code ``PebbleCodeGenerator`` emits.
    """

    code_generator_class = PebbleCodeGenerator
    intercepted_binops = frozenset({"*", "**", "/", "%", "+", "-"})

    def __init__(self, engine: TemplateEngine):
        super().__init__(undefined=KrayUndefined, autoescape=False, keep_trailing_newline=True,
                         finalize=stringify)
        self.engine = engine
        self._pebble_lexer = PebbleLexer(self)
        self.filters.update(FILTERS)
        self.filters.update(date_filters(engine.timezone))
        self.tests.update(TESTS)
        self.globals.update(functions(engine))

    @property
    def lexer(self) -> PebbleLexer:
        return self._pebble_lexer

    def preprocess(self, source: str, name: str | None = None, filename: str | None = None) -> str:
        return preprocess(super().preprocess(source, name, filename))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return PebbleParser(self, source, name, filename).parse()

    # -- helpers called from compiled templates
    def kray_coalesce(self, left: Callable[[], Any], right: Callable[[], Any],
                      keep_null: bool) -> Any:
        try:
            value = left()
        except UndefinedError:
            return right()
        if isinstance(value, Undefined) or (value is None and not keep_null):
            return right()
        return value

    def kray_contains(self, container: Any, item: Any) -> bool:
        fail_if_undefined(container)
        fail_if_undefined(item)
        if container is None:
            return False
        if isinstance(container, str):
            return stringify(item) in container
        if isinstance(container, (list, tuple)) and isinstance(item, (list, tuple)):
            return all(x in container for x in item)
        try:
            return item in container
        except TypeError:
            kind = type(container).__name__
            raise TemplateError(f"'contains' cannot look inside a {kind}") from None

    def kray_range(self, start: Any, end: Any) -> list[Any]:
        fail_if_undefined(start)
        fail_if_undefined(end)
        if isinstance(start, str) and isinstance(end, str) and len(start) == len(end) == 1:
            return [chr(c) for c in self.engine.bounded_range(ord(start), ord(end) + 1, 1)]
        return self.engine.bounded_range(int(start), int(end) + 1, 1)

    def kray_concat(self, values: tuple[Any, ...]) -> str:
        return "".join(stringify(v) for v in values)

    def kray_iter(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            value = [MapEntry(k, v) for k, v in value.items()]
        state = CURRENT.get()
        if state is None or state.deadline is None:
            return value
        return self._timed(value, state.deadline)

    def _timed(self, value: Any, deadline: float) -> Any:
        for item in value:
            if time.monotonic() > deadline:
                raise self.engine.too_slow()
            yield item

    def kray_getattr(self, obj: Any, name: str, base: str | None) -> Any:
        if isinstance(obj, Undefined):
            return obj  # chained: keep naming the first missing link
        if isinstance(obj, Mapping):  # Pebble reads map keys first: outputs.t1.values works
            try:
                return obj[name]
            except (KeyError, TypeError):
                if name in _MAP_METHODS:
                    return self.getattr(obj, name)
                return self._missing(obj, name, base, f"{base}.{name}")
        if isinstance(obj, LoopContext):
            name = _PEBBLE_LOOP.get(name, name)
        value = self.getattr(obj, name)
        if isinstance(value, Undefined) and value._undefined_exception is UndefinedError:
            return self._missing(obj, name, base, f"{base}.{name}")
        return value

    def kray_getitem(self, obj: Any, key: Any, base: str | None) -> Any:
        if isinstance(obj, Undefined):
            return obj
        fail_if_undefined(key)
        label = f"{base}[{key!r}]"
        if isinstance(obj, Mapping):
            try:
                return obj[key]
            except (KeyError, TypeError):
                return self._missing(obj, key, base, label)
        value = self.getitem(obj, key)
        if isinstance(value, Undefined) and value._undefined_exception is UndefinedError:
            return self._missing(obj, key, base, label)
        return value

    def _missing(self, obj: Any, name: Any, base: str | None, label: str) -> Undefined:
        hint = None
        if base is not None:
            hint = f"'{label}' is undefined"
            if isinstance(obj, Mapping):
                names = sorted(str(k) for k in obj)
                hint += f" ({base} has {_preview(names)})" if names else f" ({base} is empty)"
        return self.undefined(hint=hint, obj=obj, name=name)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Pebble's arithmetic (Java's): integer ``/`` truncates, ``%`` keeps the dividend's
        sign, ``+`` with a string concatenates, ``+``/``-`` on a list add/remove items. Also
        refuses results too large to build (``'x' * 10**9``, ``10 ** 10**6``)."""
        fail_if_undefined(left)
        fail_if_undefined(right)
        if operator in ("/", "%") and _is_int(left) and _is_int(right):
            if right == 0:
                raise TemplateError("division by zero")
            quotient = abs(left) // abs(right) * (1 if (left < 0) == (right < 0) else -1)
            return quotient if operator == "/" else left - right * quotient
        if operator == "%" and isinstance(left, float | int) and isinstance(right, float | int):
            return math.fmod(left, right)  # Java's remainder on doubles
        if operator == "+" and (isinstance(left, str) or isinstance(right, str)):
            return stringify(left) + stringify(right)
        if operator in ("+", "-") and isinstance(left, list):
            items = right if isinstance(right, (list, tuple)) else [right]
            if operator == "+":
                return [*left, *items]
            return [x for x in left if x not in items]
        limit = self.engine.max_output_chars
        if operator == "*":
            seq, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int) \
                    and len(seq) * times > limit:
                raise TemplateError(f"repeating a value {times} times exceeds the "
                                    f"{limit} characters limit")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) \
                and abs(left) > 1 and right * math.log2(abs(left)) > 65_536:
            raise TemplateError(f"{left} ** {right} is too large")
        return super().call_binop(context, operator, left, right)


@dataclass
class _Compiled:
    template: Template
    issues: list[TemplateError] = field(default_factory=list)
    native: Template | None = None  # the ``{{ expr }}`` as an assignment, for evaluate()
    native_ready: bool = False


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class TemplateEngine:
    """Render, evaluate and check Pebble templates. Thread-safe; one per process is enough.

    ``clock`` feeds ``now()`` (an aware datetime; a naive one is read as UTC); ``timezone`` is the
    default zone of ``now()`` and the date filters (Kestra uses the server's zone, kray UTC).
    ``max_output_chars`` caps one render's output, ``max_range`` a range's length,
    ``max_render_seconds`` the time one render may take (checked in loops and between outputs).
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 max_output_chars: int = 10_000_000, max_range: int = 100_000,
                 timezone: str = "UTC", max_render_seconds: float | None = 30.0,
                 cache_size: int = 4096):
        self._clock = clock or _utc_now
        self.max_output_chars = max_output_chars
        self.max_range = max_range
        self.max_render_seconds = max_render_seconds
        self.timezone = dates.zone(timezone)
        self._cache: OrderedDict[str, _Compiled] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._env = KrayEnvironment(self)
        self._globals = dict(self._env.globals)  # a plain dict: cheaper to merge than a ChainMap

    # ------------------------------------------------------------------------------ public
    def render(self, template: str, variables: Mapping[str, Any],
               services: TemplateServices | None = None) -> str:
        """Render ``template`` to a string. A string without ``{{``/``{%`` is returned as is."""
        if not has_markers(template):
            return template
        compiled = self._compiled(template)
        rendered: str = self._run(template, compiled.template, services,
                                  lambda: self._output(compiled.template, variables))
        return rendered

    def render_value(self, value: Any, variables: Mapping[str, Any],
                     services: TemplateServices | None = None) -> Any:
        """Render every string in ``value`` (dict keys and values, list items, recursively)."""
        if isinstance(value, str):
            return self.render(value, variables, services)
        if isinstance(value, Mapping):
            return {self.render_value(k, variables, services):
                    self.render_value(v, variables, services) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            rendered = [self.render_value(v, variables, services) for v in value]
            return rendered if isinstance(value, list) else tuple(rendered)
        return value

    def evaluate(self, template: str, variables: Mapping[str, Any],
                 services: TemplateServices | None = None) -> Any:
        """The native value of a template that is exactly one ``{{ expr }}`` (surrounding
        whitespace allowed): a list stays a list, a number a number, null is None.
        Any other template is rendered to a string."""
        if not has_markers(template):
            return template
        compiled = self._compiled(template)
        native = self._native(template, compiled)
        if native is None:
            return self.render(template, variables, services)

        def run() -> Any:
            context = native.new_context({**self._globals, **variables}, shared=True)
            for _ in native.root_render_func(context):
                pass
            value = context.vars[_RESULT]
            check_defined(value)
            if isinstance(value, str) and len(value) > self.max_output_chars:
                raise self.too_large()
            return value
        return self._run(template, native, services, run)

    def check(self, template: str) -> None:
        """Parse and compile without rendering; raise ``TemplateError`` (with the line) on a
        syntax error, an unknown filter, test or function."""
        if not has_markers(template):
            return
        compiled = self._compiled(template)
        if compiled.issues:
            raise compiled.issues[0]

    # ---------------------------------------------------------------- for template functions
    def now(self) -> datetime:
        moment = self._clock()
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)

    def bounded_range(self, start: int, stop: int, step: int) -> list[int]:
        values = range(start, stop, step)
        if len(values) > self.max_range:
            raise TemplateError(f"range of {len(values)} values exceeds the limit of "
                                f"{self.max_range}")
        return list(values)

    def render_nested(self, template: str, variables: Mapping[str, Any]) -> str:
        """``render()`` inside a template: same services, same deadline, bounded nesting."""
        state = CURRENT.get()
        if state is None:
            return self.render(template, variables)
        if not has_markers(template):
            return template
        if state.depth >= _MAX_NESTING:
            raise TemplateError(f"render() nested more than {_MAX_NESTING} levels deep")
        try:
            compiled = self._compiled(template)
        except TemplateError as exc:
            raise TemplateError(f"render(): {exc}") from None
        state.depth += 1
        try:
            return self._output(compiled.template, variables)
        finally:
            state.depth -= 1

    def too_slow(self) -> TemplateError:
        return TemplateError(f"rendering took longer than {self.max_render_seconds} seconds")

    def too_large(self) -> TemplateError:
        return TemplateError(f"rendered output exceeds {self.max_output_chars} characters")

    # ----------------------------------------------------------------------------- internals
    def _compiled(self, source: str) -> _Compiled:
        with self._lock:
            hit = self._cache.get(source)
            if hit is not None:
                self._cache.move_to_end(source)
                return hit
        try:
            tree = self._env.parse(source)
        except TemplateSyntaxError as exc:
            raise _syntax_error(exc, source) from None
        issues = self._lint(tree, source)
        try:
            compiled = _Compiled(self._env.from_string(tree), issues)
        except TemplateSyntaxError as exc:  # Jinja's own "No filter named ..." comes here
            raise (issues[0] if issues else _syntax_error(exc, source)) from None
        with self._lock:
            self._cache[source] = compiled
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def _native(self, source: str, compiled: _Compiled) -> Template | None:
        if compiled.native_ready:
            return compiled.native
        body = self._env.parse(source).body
        native = None
        if len(body) == 1 and isinstance(body[0], nodes.Output):
            exprs = [n for n in body[0].nodes
                     if not (isinstance(n, nodes.TemplateData) and not n.data.strip())]
            if len(exprs) == 1 and not isinstance(exprs[0], nodes.TemplateData):
                assign = nodes.Assign(nodes.Name(_RESULT, "store"), exprs[0], lineno=1)
                native = self._env.from_string(nodes.Template([assign], lineno=1))
        compiled.native, compiled.native_ready = native, True
        return native

    def _lint(self, tree: nodes.Template, source: str) -> list[TemplateError]:
        """What Jinja would only notice when the line runs: unknown filters, tests, functions."""
        env = self._env
        local = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
        local |= {m.name for m in tree.find_all(nodes.Macro)}
        issues = []
        for node in tree.find_all((nodes.Filter, nodes.Test, nodes.Call)):
            if isinstance(node, nodes.Filter) and node.name not in env.filters:
                message = f"unknown filter '{node.name}'"
            elif isinstance(node, nodes.Test) and node.name not in env.tests:
                message = f"unknown test '{node.name}'"
            elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and \
                    node.node.name not in env.globals and node.node.name not in local and \
                    node.node.name not in _ALLOWED_CALLS:
                message = f"unknown function '{node.node.name}'"
            else:
                continue
            issues.append(_located(message, node.lineno, source))
        return sorted(issues, key=lambda e: getattr(e, "line", 0) or 0)

    def _output(self, template: Template, variables: Mapping[str, Any]) -> str:
        state = CURRENT.get()
        deadline = state.deadline if state is not None else None
        context = template.new_context({**self._globals, **variables}, shared=True)
        parts: list[str] = []
        total = 0
        for chunk in template.root_render_func(context):
            total += len(chunk)
            if total > self.max_output_chars:
                raise self.too_large()
            if deadline is not None and time.monotonic() > deadline:
                raise self.too_slow()
            parts.append(chunk)
        return "".join(parts)

    def _run(self, source: str, template: Template, services: TemplateServices | None,
             body: Callable[[], Any]) -> Any:
        parent = CURRENT.get()
        if parent is not None and parent.engine is self and services is None:
            state = parent  # a public call from inside a render (a service rendering, say)
        else:
            deadline = None if self.max_render_seconds is None else \
                time.monotonic() + self.max_render_seconds
            state = RenderState(self, services, deadline)
        token = CURRENT.set(state)
        try:
            return body()
        except Exception as exc:  # every failure becomes a TemplateError
            raise _runtime_error(exc, source, template) from exc
        finally:
            CURRENT.reset(token)


# ---------------------------------------------------------------------------------- errors

def _located(message: str, line: int | None, source: str) -> TemplateError:
    lines = source.splitlines()
    if line is not None and len(lines) > 1 and 0 < line <= len(lines):
        text = lines[line - 1].strip()
        snippet = text if len(text) <= 80 else text[:77] + "..."
        message = f"{message} (line {line}: {snippet})"
    error = TemplateError(message)
    error.line = line  # type: ignore[attr-defined]
    return error


def _syntax_error(exc: TemplateSyntaxError, source: str) -> TemplateError:
    message = exc.message or "syntax error"
    if len(source.splitlines()) <= 1:
        error = TemplateError(f"{message} (line {exc.lineno})")
        error.line = exc.lineno  # type: ignore[attr-defined]
        return error
    return _located(message, exc.lineno, source)


def _template_line(tb: TracebackType | None, template: Template) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_globals.get("__jinja_template__") is template:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _runtime_error(exc: Exception, source: str, template: Template) -> TemplateError:
    if isinstance(exc, TemplateError):
        if getattr(exc, "line", None) is not None:
            return exc
        message = str(exc)
    elif isinstance(exc, SecurityError):
        message = f"not allowed in a template: {exc}"
    elif isinstance(exc, (JinjaError, KrayError)):
        message = str(exc)
    elif isinstance(exc, RecursionError):
        message = "template recursion is too deep"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return _located(message, _template_line(exc.__traceback__, template), source)
