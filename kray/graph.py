"""A flow's topology, for drawing: nodes (tasks, flowable groups, triggers, start and end) and
the edges between them. Pure: a parsed ``Flow`` in, plain dicts out.

Node ``uid``s: a task's uid is its id, which is unique in the whole flow and is exactly the
``taskId`` its task runs carry, so a UI colours a node with the states of the task runs whose
``taskId`` equals its uid (a task inside a ForEach has one run per value). The other nodes use
characters a task id cannot hold: ``$start`` and ``$end`` for the flow, ``<id>.start`` and
``<id>.end`` inside a flowable group, ``$trigger.<id>`` for a trigger.

A flowable task with children is a group: its children (and its own start and end nodes) have
``parent`` set to it and a ``branch`` saying which of its lists holds them (null for the main
``tasks``; ``then``, ``else``, ``case:<value>``, ``defaults``, ``errors``, ``finally``, or the
flow's ``afterExecution``). Edges reach a group at the group's node; inside, they run from
``<id>.start`` to ``<id>.end``.

Edge relations: ``sequential`` (one after the other), ``parallel`` (from the start of a
Parallel to each child), ``dag`` (a Dag's ``dependsOn``), ``error`` (into an ``errors`` branch),
``finally`` (into a ``finally`` branch), ``afterExecution`` and ``trigger``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kray.flow.model import Flow
from kray.task import FlowableTask, Task

FLOW_START, FLOW_END = "$start", "$end"
MAIN_BRANCH = "tasks"  # the field whose children are on the null branch
SPECIAL_BRANCHES = ("errors", "finally")


@dataclass
class _Branch:
    name: str | None
    tasks: list[Task]
    mode: str = "sequential"  # or "parallel", "dag"
    depends_on: dict[str, list[str]] = field(default_factory=dict)  # dag only


def _is_task_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, Task) for t in value)


def _is_dag_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(getattr(d, "task", None), Task) and hasattr(d, "depends_on") for d in value)


def _parallel(task: FlowableTask) -> bool:
    """Parallel runs its ``tasks`` side by side; every other core flowable runs a list in
    order (ForEach runs values side by side, but each value's tasks in order)."""
    names = (task.type_name, *task.aliases)
    return any(n.rsplit(".", 1)[-1] == "Parallel" for n in names)


def branches(task: FlowableTask) -> list[_Branch]:
    """The flowable's child lists, named by their YAML property, in declaration order; any
    child that ``child_lists`` holds but no property does (hidden tasks) on the main branch."""
    found: list[_Branch] = []
    for name, info in type(task).model_fields.items():
        alias = info.alias or name
        value = getattr(task, name, None)
        if _is_task_list(value):
            main = alias == MAIN_BRANCH
            found.append(_Branch(None if main else alias, list(value),
                                 "parallel" if main and _parallel(task) else "sequential"))
        elif _is_dag_list(value):
            found.append(_Branch(None, [d.task for d in value], "dag",
                                 {d.task.id: list(d.depends_on) for d in value}))
        elif isinstance(value, dict) and value and all(_is_task_list(v) for v in value.values()):
            found.extend(_Branch(f"case:{key}", list(tasks)) for key, tasks in value.items())
    seen = {t.id for b in found for t in b.tasks}
    hidden = [t for lst in task.child_lists() for t in lst if t.id not in seen]
    if hidden:
        found.append(_Branch(None, hidden))
    return found


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self._edge_keys: set[tuple[str, str]] = set()

    def node(self, uid: str, kind: str, label: str, *, task: Task | None = None,
             parent: str | None = None, branch: str | None = None,
             type_name: str | None = None) -> None:
        self.nodes.append({
            "uid": uid, "taskId": task.id if task is not None else None,
            "type": task.type if task is not None else type_name, "kind": kind,
            "parent": parent, "branch": branch, "label": label,
            "disabled": bool(task.disabled) if task is not None else False})

    def edge(self, source: str, target: str, relation: str) -> None:
        if (source, target) not in self._edge_keys:
            self._edge_keys.add((source, target))
            self.edges.append({"source": source, "target": target, "relation": relation})

    def task(self, task: Task, parent: str | None, branch: str | None) -> None:
        children = branches(task) if isinstance(task, FlowableTask) else []
        self.node(task.id, "flowable" if isinstance(task, FlowableTask) else "task", task.id,
                  task=task, parent=parent, branch=branch)
        if not children:
            return
        start, end = f"{task.id}.start", f"{task.id}.end"
        self.node(start, "start", "start", parent=task.id)
        self.node(end, "end", "end", parent=task.id)
        by_name = {b.name: b for b in children if b.name in SPECIAL_BRANCHES}
        bodies = [b for b in children if b.name not in SPECIAL_BRANCHES]
        self.scope(task.id, start, end, bodies, by_name.get("errors"), by_name.get("finally"))

    def scope(self, owner: str | None, start: str, end: str, bodies: list[_Branch],
              errors: _Branch | None, finally_: _Branch | None,
              after: _Branch | None = None) -> None:
        """Bodies side by side from ``start``; ``errors`` from ``start`` too (any failure
        leads there); ``finally`` after both; then ``afterExecution``; then ``end``."""
        exits: list[str] = []
        for body in bodies:
            exits += self.chain(body, owner, [start])
        if not bodies:
            exits = [start]
        if errors is not None:
            exits += self.chain(errors, owner, [start], "error")
        if finally_ is not None:
            exits = self.chain(finally_, owner, exits, "finally")
        if after is not None:
            exits = self.chain(after, owner, exits, "afterExecution")
        for uid in exits:
            self.edge(uid, end, "sequential")

    def chain(self, branch: _Branch, owner: str | None, entry: list[str],
              relation_in: str | None = None) -> list[str]:
        """Add a branch's tasks and edges, from the ``entry`` nodes; returns its exits."""
        tasks = branch.tasks
        for t in tasks:
            self.task(t, owner, branch.name)
        if not tasks:
            return entry
        if branch.mode == "parallel":
            for t in tasks:
                for uid in entry:
                    self.edge(uid, t.id, relation_in or "parallel")
            return [t.id for t in tasks]
        if branch.mode == "dag":
            return self._dag(branch, entry, relation_in)
        for uid in entry:
            self.edge(uid, tasks[0].id, relation_in or "sequential")
        for before, after in zip(tasks, tasks[1:]):
            self.edge(before.id, after.id, "sequential")
        return [tasks[-1].id]

    def _dag(self, branch: _Branch, entry: list[str], relation_in: str | None) -> list[str]:
        ids = [t.id for t in branch.tasks]
        known = set(ids)
        needed: set[str] = set()
        for uid in ids:
            deps = [d for d in branch.depends_on.get(uid, []) if d in known]
            needed.update(deps)
            for dep in deps:
                self.edge(dep, uid, "dag")
            if not deps:
                for source in entry:
                    self.edge(source, uid, relation_in or "dag")
        return [uid for uid in ids if uid not in needed]


def flow_graph(flow: Flow) -> dict[str, list[dict[str, Any]]]:
    """The topology of a parsed flow: ``{"nodes": [...], "edges": [...]}``, nodes in the
    order a reader meets them (parents before their children)."""
    b = _Builder()
    b.node(FLOW_START, "start", "start")
    b.node(FLOW_END, "end", "end")
    for trigger in flow.triggers:
        uid = f"$trigger.{trigger.id}"
        b.node(uid, "trigger", trigger.id, type_name=trigger.type)
        b.edge(uid, FLOW_START, "trigger")
    lists = {"errors": flow.errors, "finally": flow.finally_,
             "afterExecution": flow.after_execution}
    named = {k: _Branch(k, v) for k, v in lists.items() if v}
    b.scope(None, FLOW_START, FLOW_END, [_Branch(None, flow.tasks)], named.get("errors"),
            named.get("finally"), named.get("afterExecution"))
    return {"nodes": b.nodes, "edges": b.edges}


__all__ = ["flow_graph", "branches", "FLOW_START", "FLOW_END"]
