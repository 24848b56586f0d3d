"""Parse and validate a flow: YAML text -> ``Flow``, with every issue found, each located.

Tasks are polymorphic, so the raw data is walked here rather than handed to pydantic whole:
each task's ``type`` is resolved through the registry, the flow's ``pluginDefaults`` applied,
its child tasks (found from the class's field annotations) parsed first, then the task is
validated on its own, so one bad task never hides another's errors. Whatever fails is replaced
by a placeholder, so that its parents and the flow are still checked. The checks pydantic
cannot make (unique task ids, Dag dependencies, input declarations, trigger types, template
syntax) follow; the issues come back sorted by line and column.
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from kray.errors import FlowValidationError, Issue, PluginNotFound, TemplateError
from kray.flow.children import (
    DictShape,
    ListShape,
    ModelShape,
    Shape,
    TaskShape,
    child_fields,
    known_keys,
    model_at,
)
from kray.flow.defaults import apply_plugin_defaults
from kray.flow.inputs import check_declaration
from kray.flow.model import Flow, Input, PluginDefault, Trigger
from kray.flow.yaml import Path, Positions, format_path, load_yaml
from kray.registry import PluginRegistry
from kray.task import Task

log = logging.getLogger(__name__)

TASK_LISTS = ("tasks", "errors", "finally", "afterExecution")


# -- pydantic errors -> issues -------------------------------------------------------------------

def _clean_loc(loc: tuple[Any, ...], data: Any, missing: bool) -> tuple[Any, ...]:
    """Keep the parts of a pydantic ``loc`` that are keys of the data; drop union tags."""
    out: list[Any] = []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(cur, Mapping) and part in cur:
            out.append(part)
            cur = cur[part]
        elif (isinstance(cur, list) and isinstance(part, int) and not isinstance(part, bool)
              and 0 <= part < len(cur)):
            out.append(part)
            cur = cur[part]
        elif missing and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def _where(loc: tuple[Any, ...]) -> str:
    tail: list[Any] = []
    for part in reversed(loc):
        tail.insert(0, part)
        if isinstance(part, str):
            break
    return format_path(tuple(tail))


def _clean_msg(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[:1].lower() + msg[1:] if msg[1:2].islower() else msg


def _describe(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


def _placeholder(cls: type[Task], raw: Any) -> Task:
    """Stands in for a task that failed, so that its parents are still validated."""
    raw = raw if isinstance(raw, Mapping) else {}
    ident, kind = raw.get("id"), raw.get("type")
    return cls.model_construct(id=ident if isinstance(ident, str) else "",
                               type=kind if isinstance(kind, str) else "")


def _key_str(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


@functools.lru_cache(maxsize=1)
def template_checker() -> Callable[[str], Any] | None:
    """``TemplateEngine().check``, or None while ``kray.templating`` cannot be imported."""
    try:
        from kray.templating import TemplateEngine
        return TemplateEngine().check
    except Exception as exc:  # not written yet, or broken: validate everything else
        log.warning("template syntax is not checked: kray.templating unavailable (%s)", exc)
        return None


# -- the parser ----------------------------------------------------------------------------------

class _Parser:
    def __init__(self, file: str | None, registry: PluginRegistry) -> None:
        self.file = file
        self.registry = registry
        self.pos = Positions()
        self.issues: list[Issue] = []
        self.task_ids: dict[str, Path] = {}
        self.declared: Counter[str] = Counter()
        self.defaults: list[PluginDefault] = []
        self.check_template = template_checker()

    def add(self, path: Path, message: str, *, at_value: bool = False) -> None:
        line, col = (self.pos.value(path) if at_value else self.pos.key(path)) or (None, None)
        self.issues.append(Issue(message, format_path(path), self.file, line, col))

    def parse(self, source: str) -> Flow | None:
        loaded = load_yaml(source, self.file)
        self.pos = loaded.positions
        self.issues.extend(loaded.issues)
        if not isinstance(loaded.data, dict):
            self.add((), f"a flow must be a YAML mapping, got {_describe(loaded.data)}")
            return None
        data = dict(loaded.data)
        for key in ("source", "path"):  # set by the loader, never written by hand
            if key in data:
                self.add((key,), f"extra field not permitted: '{key}'")
                del data[key]
        self._plugin_defaults(data)
        for key in TASK_LISTS:
            if isinstance(data.get(key), list):
                data[key] = [self.task(item, (key, i), Task) for i, item in enumerate(data[key])]
        self._inputs(data)
        self._triggers(data)
        self._outputs(data)
        self.templates(data.get("variables"), ("variables",))
        try:
            flow = Flow.model_validate(data)
        except ValidationError as exc:
            self.pydantic(exc, (), Flow, data)
            return None
        self._hidden_ids(flow)
        return flow

    def _hidden_ids(self, flow: Flow) -> None:
        """A flowable may add hidden children of its own (a ForEachItem adds ``<id>_split``,
        ``<id>_items`` and ``<id>_merge``): no declared task may take one of their ids."""
        counts = Counter(t.id for t in flow.all_tasks())
        for task_id, n in counts.items():
            if self.declared[task_id] and n > self.declared[task_id]:
                self.add((*self.task_ids[task_id], "id"),
                         f"task id '{task_id}' is also the id of a task that a flowable adds "
                         "on its own (a ForEachItem 'x' adds 'x_split', 'x_items' and "
                         "'x_merge'); choose another id", at_value=True)

    # -- tasks ---------------------------------------------------------------------------------

    def task(self, raw: Any, path: Path, expected: type[Task]) -> Task:
        """Parse one raw task (children first); a placeholder when it is invalid."""
        if not isinstance(raw, dict):
            self.add(path, f"a task must be a mapping, got {_describe(raw)}")
            return _placeholder(expected, raw)
        task_id = raw.get("id")
        if isinstance(task_id, str):
            first = self.task_ids.setdefault(task_id, path)
            self.declared[task_id] += 1
            if first is not path:
                line = (self.pos.value((*first, "id")) or ("?",))[0]
                self.add((*path, "id"), f"duplicate task id '{task_id}' (first defined at "
                                        f"line {line})", at_value=True)
        type_name = raw.get("type")
        if not isinstance(type_name, str):
            if type_name is None:
                self.add(path, "field required: 'type'")
            else:
                self.add((*path, "type"), "invalid value for 'type': must be a string",
                         at_value=True)
            return _placeholder(expected, raw)
        try:
            cls = self.registry.resolve(type_name)
        except PluginNotFound as exc:
            self.add((*path, "type"), str(exc), at_value=True)
            return _placeholder(expected, raw)
        data = apply_plugin_defaults(raw, cls, type_name, self.defaults)
        children = child_fields(cls)
        for key, shape in children.items():
            if key in data:
                data[key] = self._children(data[key], (*path, key), shape)
        for key, value in data.items():
            if key not in children and key not in ("id", "type"):
                self.templates(value, (*path, key))
        try:
            task = cls.model_validate(data)
        except ValidationError as exc:
            self.pydantic(exc, path, cls, data)
            return _placeholder(expected, raw)
        if not isinstance(task, expected):
            self.add((*path, "type"), f"a '{type_name}' task is not allowed here; expected a "
                                      f"{expected.__name__}", at_value=True)
            return _placeholder(expected, raw)
        self._check_fields(task, path)
        return task

    def _children(self, value: Any, path: Path, shape: Shape) -> Any:
        if isinstance(shape, TaskShape):
            return None if value is None else self.task(value, path, shape.cls)
        if isinstance(shape, ListShape) and isinstance(value, list):
            return [self._item(v, (*path, i), shape.item) for i, v in enumerate(value)]
        if isinstance(shape, DictShape) and isinstance(value, dict):
            return {_key_str(k): self._item(v, (*path, k), shape.item) for k, v in value.items()}
        if isinstance(shape, ModelShape) and isinstance(value, dict):
            out = dict(value)
            for key, sub in shape.fields.items():
                if key in out:
                    out[key] = self._children(out[key], (*path, key), sub)
            return out
        return value  # the wrong kind of value: the model's validation says so

    def _item(self, value: Any, path: Path, shape: Shape) -> Any:
        if isinstance(shape, TaskShape):  # a list item must be a task, None included
            return self.task(value, path, shape.cls)
        return self._children(value, path, shape)

    def _plugin_defaults(self, data: dict[str, Any]) -> None:
        raw = data.get("pluginDefaults")
        if not isinstance(raw, list):
            return
        parsed: list[PluginDefault] = []
        for i, item in enumerate(raw):
            try:
                default = PluginDefault.model_validate(item)
            except ValidationError as exc:
                self.pydantic(exc, ("pluginDefaults", i), PluginDefault, item)
                default = PluginDefault.model_construct(type="", values={})
            parsed.append(default)
        self.defaults = [d for d in parsed if d.type]
        data["pluginDefaults"] = parsed

    def _check_fields(self, task: Task, path: Path) -> None:
        """What pydantic cannot check in a valid task: the dependencies of a Dag-like list of
        ``{task, depends_on}`` items, and input declarations (a Pause's ``onResume``)."""
        for name, info in type(task).model_fields.items():
            items = getattr(task, name, None)
            if not isinstance(items, list) or not items:
                continue
            base = (*path, info.alias or name)
            if all(isinstance(it, Input) for it in items):
                for i, inp in enumerate(items):
                    for prop, message in check_declaration(inp):
                        self.add((*base, i, prop) if prop else (*base, i), message,
                                 at_value=prop in ("type", "itemType"))
            elif all(hasattr(it, "task") and hasattr(it, "depends_on") for it in items):
                self._check_dag(items, base)

    def _check_dag(self, items: list[Any], base: Path) -> None:
        """Every dependency must be a task of the same Dag, and they must not form a cycle."""
        ids = [getattr(it.task, "id", None) or f"#{i}" for i, it in enumerate(items)]
        index: dict[str, int] = {}
        for i, tid in enumerate(ids):
            index.setdefault(tid, i)

        def dep_key(item: Any) -> str:
            info = getattr(type(item), "model_fields", {}).get("depends_on")
            return getattr(info, "alias", None) or "dependsOn"

        graph: dict[str, list[str]] = {}
        for i, it in enumerate(items):
            deps = list(it.depends_on or [])
            for j, dep in enumerate(deps):
                if dep not in index:
                    self.add((*base, i, dep_key(it), j), f"unknown task '{dep}' in dependsOn; "
                             f"the tasks of this Dag are: {', '.join(index)}", at_value=True)
            graph.setdefault(ids[i], []).extend(d for d in deps if d in index)
        for cycle in _cycles(graph):
            first = index[cycle[0]]
            self.add((*base, first, dep_key(items[first])),
                     f"dependency cycle: {' -> '.join(cycle)}")

    # -- the rest of the flow ------------------------------------------------------------------

    def _inputs(self, data: dict[str, Any]) -> None:
        raw = data.get("inputs")
        if not isinstance(raw, list):
            return
        parsed: list[Any] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            if isinstance(item, dict) and "id" not in item and "name" in item:
                item = {**item, "id": item["name"]}  # Kestra's oldest spelling
            try:
                inp = Input.model_validate(item)
            except ValidationError as exc:
                self.pydantic(exc, ("inputs", i), Input, item)
                parsed.append(Input.model_construct(id=f"_{i}", type="STRING"))
                continue
            parsed.append(inp)
            if inp.id in seen:
                self.add(("inputs", i, "id"), f"duplicate input id '{inp.id}'", at_value=True)
            seen.setdefault(inp.id, i)
            for prop, message in check_declaration(inp):
                self.add(("inputs", i, prop) if prop else ("inputs", i), message,
                         at_value=prop in ("type", "itemType"))
        for input_id, i in seen.items():
            parts = input_id.split(".")
            for n in range(1, len(parts)):
                if ".".join(parts[:n]) in seen:
                    self.add(("inputs", i, "id"), f"input id '{input_id}' conflicts with input "
                                                  f"'{'.'.join(parts[:n])}'", at_value=True)
        data["inputs"] = parsed

    def _triggers(self, data: dict[str, Any]) -> None:
        raw = data.get("triggers")
        if not isinstance(raw, list):
            return
        parsed: list[Any] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            kind = item.get("type") if isinstance(item, dict) else None
            if isinstance(kind, str) and not self.registry.is_trigger_type(kind):
                near = self.registry.suggest_trigger_type(kind)
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                self.add(("triggers", i, "type"), f"unknown trigger type '{kind}'{hint}",
                         at_value=True)
            try:
                trigger = Trigger.model_validate(item)
            except ValidationError as exc:
                self.pydantic(exc, ("triggers", i), Trigger, item)
                trigger = Trigger.model_construct(id=f"_{i}", type="")
            else:
                model = self.registry.trigger_model(trigger.type)
                if model is not None:  # the type's own properties (Schedule's cron, ...)
                    try:
                        model.model_validate(item)
                    except ValidationError as exc:
                        self.pydantic(exc, ("triggers", i), model, item)
                if trigger.id in seen:
                    self.add(("triggers", i, "id"), f"duplicate trigger id '{trigger.id}'",
                             at_value=True)
                seen.add(trigger.id)
            parsed.append(trigger)
        data["triggers"] = parsed

    def _outputs(self, data: dict[str, Any]) -> None:
        raw = data.get("outputs")
        if not isinstance(raw, list):
            return
        seen: set[Any] = set()
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                continue
            if "id" in item and isinstance(item["id"], str):
                if item["id"] in seen:
                    self.add(("outputs", i, "id"), f"duplicate output id '{item['id']}'",
                             at_value=True)
                seen.add(item["id"])
            self.templates(item.get("value"), ("outputs", i, "value"))

    def templates(self, value: Any, path: Path) -> None:
        """Check the template syntax of every string below ``value``."""
        if self.check_template is None:
            return
        if isinstance(value, str):
            if "{" in value:
                try:
                    self.check_template(value)
                except TemplateError as exc:
                    self.add(path, f"invalid template: {exc}", at_value=True)
        elif isinstance(value, dict):
            for key, sub in value.items():
                self.templates(sub, (*path, key))
        elif isinstance(value, list):
            for i, sub in enumerate(value):
                self.templates(sub, (*path, i))

    def pydantic(self, exc: ValidationError, base: Path, model: type[BaseModel],
                 data: Any) -> None:
        """Turn a model's validation errors into located issues; a union's alternatives on
        one field become one issue."""
        grouped: dict[tuple[Any, ...], list[Any]] = {}
        for err in exc.errors(include_url=False):
            loc = _clean_loc(tuple(err["loc"]), data, err["type"] == "missing")
            grouped.setdefault(loc, []).append(err)
        for loc, errs in grouped.items():
            path = (*base, *loc)
            types = {e["type"] for e in errs}
            if "missing" in types:
                self.add(path, f"field required: '{_where(loc)}'")
            elif "extra_forbidden" in types:
                message = f"extra field not permitted: '{_where(loc)}'"
                owner = model_at(model, [p for p in loc[:-1]])
                if owner is not None and isinstance(loc[-1], str):
                    near = difflib.get_close_matches(loc[-1], known_keys(owner), n=1,
                                                     cutoff=0.7)
                    if near:
                        message += f"; did you mean '{near[0]}'?"
                self.add(path, message)
            else:
                msgs = list(dict.fromkeys(_clean_msg(e["msg"]) for e in errs))
                value = errs[0].get("input")
                shown = ""
                if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60:
                    shown = f" {value!r}"
                where = f" for '{_where(loc)}'" if loc else ""
                self.add(path, f"invalid value{shown}{where}: {'; or '.join(msgs)}")


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Each distinct cycle of a dependency graph, as a path that ends where it starts."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep):], dep]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append(cycle)
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return found


def _sorted(issues: list[Issue]) -> list[Issue]:
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda i: (i.line is None, i.line or 0, i.column or 0))


def _parse(source: str, file: str | None,
           registry: PluginRegistry | None) -> tuple[Flow | None, list[Issue], Positions]:
    parser = _Parser(file, registry or PluginRegistry.default())
    try:
        flow = parser.parse(source)
    except FlowValidationError as exc:  # a YAML syntax error: nothing else can be checked
        return None, exc.issues, parser.pos
    if parser.issues or flow is None:
        return None, _sorted(parser.issues), parser.pos
    flow.source = source
    flow.path = file
    return flow, [], parser.pos


def parse_flow(source: str, *, file: str | None = None,
               registry: PluginRegistry | None = None) -> Flow:
    """Parse and validate one flow. Raises ``FlowValidationError`` carrying every issue found,
    sorted by line and column. The flow keeps its ``source`` and ``path``."""
    flow, issues, _ = _parse(source, file, registry)
    if flow is None:
        raise FlowValidationError(issues)
    return flow


def _read(path: FsPath) -> tuple[str | None, Issue | None]:
    try:
        return path.read_text(encoding="utf-8"), None
    except (OSError, UnicodeDecodeError) as exc:
        return None, Issue(f"cannot read the flow: {exc}", "", str(path))


def load_flow(path: str | FsPath, registry: PluginRegistry | None = None) -> Flow:
    """Read and parse one flow file."""
    source, problem = _read(FsPath(path))
    if problem is not None or source is None:
        raise FlowValidationError([problem] if problem else [])
    return parse_flow(source, file=str(path), registry=registry)


def load_flows(directory: str | FsPath, registry: PluginRegistry | None = None) -> list[Flow]:
    """Parse every ``*.yaml``/``*.yml`` below ``directory``, in path order. The issues of all
    files (and flows defined twice) are gathered into one ``FlowValidationError``."""
    root = FsPath(directory)
    if not root.is_dir():
        raise FlowValidationError([Issue("not a directory", "", str(root))])
    registry = registry or PluginRegistry.default()
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    flows: list[Flow] = []
    issues: list[Issue] = []
    first: dict[str, str] = {}
    for file in files:
        source, problem = _read(file)
        if problem is not None or source is None:
            issues.extend([problem] if problem else [])
            continue
        flow, found, pos = _parse(source, str(file), registry)
        issues.extend(found)
        if flow is None:
            continue
        if flow.uid in first:
            line, col = pos.value(("id",)) or (None, None)
            issues.append(Issue(f"flow '{flow.uid}' is also defined in {first[flow.uid]}",
                                "id", str(file), line, col))
            continue
        first[flow.uid] = str(file)
        flows.append(flow)
    if issues:
        raise FlowValidationError(issues)
    return flows
