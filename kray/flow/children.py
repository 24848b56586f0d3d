"""Where a task class keeps its child tasks, found from its pydantic field annotations.

A field holds tasks when its type is a ``Task`` (or ``Task | None``), a list or a dict of them
(``list[Task]``, ``dict[str, list[Task]]``), or a nested model that holds some, such as a
Dag's ``list[DagTask]`` items ``{task, dependsOn}``. The parser walks these fields to parse the
children before the task itself is validated.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from kray.task import Task


@dataclass(eq=False)
class TaskShape:
    cls: type[Task]


@dataclass(eq=False)
class ListShape:
    item: Shape


@dataclass(eq=False)
class DictShape:
    item: Shape


@dataclass(eq=False)
class ModelShape:  # a nested model holding tasks, e.g. a Dag's {task, dependsOn}
    fields: dict[str, Shape] = field(default_factory=dict)  # YAML key (and field name) -> shape


Shape = TaskShape | ListShape | DictShape | ModelShape


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _shape(annotation: Any, seen: frozenset[type] = frozenset()) -> Shape | None:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _shape(args[0], seen)
    if origin in (Union, UnionType):
        shapes = [s for a in args if a is not type(None) and (s := _shape(a, seen)) is not None]
        return shapes[0] if len(shapes) == 1 else None
    if origin in (list, Sequence) and args:
        inner = _shape(args[0], seen)
        return ListShape(inner) if inner else None
    if origin in (dict, Mapping) and len(args) == 2:
        inner = _shape(args[1], seen)
        return DictShape(inner) if inner else None
    if isinstance(annotation, type) and issubclass(annotation, Task):
        return TaskShape(annotation)
    if _is_model(annotation) and annotation not in seen:
        fields = _task_fields(annotation, seen | {annotation})
        return ModelShape(fields) if fields else None
    return None


def _task_fields(model: type[BaseModel], seen: frozenset[type]) -> dict[str, Shape]:
    out: dict[str, Shape] = {}
    for name, info in model.model_fields.items():
        shape = _shape(info.annotation, seen)
        if shape is not None:
            out[info.alias or name] = shape
            out[name] = shape
    return out


@functools.cache
def child_fields(cls: type[Task]) -> dict[str, Shape]:
    """The fields of ``cls`` that hold tasks, by YAML key (and by field name)."""
    return _task_fields(cls, frozenset({cls}))


@functools.cache
def known_keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(info.alias or name for name, info in model.model_fields.items())


def _field_type(model: type[BaseModel], key: Any) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class found at ``loc`` below ``model`` (to suggest its property names)."""
    t: Any = model
    for part in (*loc, None):
        origin, args = get_origin(t), get_args(t)
        if origin in (Union, UnionType):
            options = [a for a in args if a is not type(None)]
            models = [a for a in options if _is_model(a)]
            t = models[0] if len(models) == 1 else options[0] if len(options) == 1 else t
            origin, args = get_origin(t), get_args(t)
        if part is None:
            break
        if _is_model(t):
            t = _field_type(t, part)
        elif origin in (list, tuple, Sequence) and args:
            t = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            t = args[1]
        else:
            return None
    return t if _is_model(t) else None
