"""Replay from a chosen task run: which task runs of the old execution the new one keeps."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from kray.engine.execution import Execution, TaskRun, task_run_id
from kray.engine.plan import Plan
from kray.engine.state import State, StateValue


def replay_runs(old: Execution, new_id: str, from_run: str, plan: Plan,
                now: datetime) -> list[TaskRun]:
    """The task runs a replay from ``from_run`` starts with, re-keyed for ``new_id``.

    Kept: runs that ended before the chosen one was created, with their outputs. Dropped: the
    chosen run, everything created after it, and any kept flowable left with a dropped child
    (it runs again). The chosen run's ancestors go back to RUNNING, so the walk resumes inside
    them. Inside a WorkingDirectory the whole directory is replayed: its shared folder is gone.
    """
    by_id = {r.id: r for r in old.task_runs}

    def ancestors(run: TaskRun) -> list[TaskRun]:
        out, parent = [], run.parent_task_run_id
        while parent is not None and parent in by_id:
            out.append(by_id[parent])
            parent = by_id[parent].parent_task_run_id
        return out

    target = by_id[from_run]
    for parent in reversed(ancestors(target)):  # outermost first
        if getattr(plan.tasks.get(parent.task_id), "groups_children", False):
            target = parent
            break
    chain = ancestors(target)
    chain_ids = {r.id for r in chain}
    position = old.task_runs.index(target)
    kept = {r.id for r in old.task_runs[:position]
            if r.id in chain_ids or r.state.current.terminal}
    children: dict[str, list[str]] = defaultdict(list)
    for r in old.task_runs:
        if r.parent_task_run_id is not None:
            children[r.parent_task_run_id].append(r.id)

    def drop(run_id: str) -> None:
        kept.discard(run_id)
        for child in children[run_id]:
            drop(child)

    # A kept flowable (not on the chosen run's path) that lost a child runs again, whole;
    # deepest first, so a parent sees what its children lost.
    for r in reversed(old.task_runs):
        if r.id in kept and r.id not in chain_ids and any(
                c not in kept for c in children[r.id]):
            drop(r.id)
    for r in old.task_runs:  # and nothing is kept under a dropped parent
        if r.id in kept and r.parent_task_run_id is not None \
                and r.parent_task_run_id not in kept:
            drop(r.id)
    path_child: dict[str, TaskRun] = {}  # each ancestor's child on the way to the target
    below = target
    for parent in chain:
        path_child[parent.id] = below
        below = parent
    new_ids: dict[str, str] = {}
    out: list[TaskRun] = []
    for r in old.task_runs:
        if r.id not in kept:
            continue
        new_parent = new_ids.get(r.parent_task_run_id) if r.parent_task_run_id else None
        rid = task_run_id(new_id, new_parent, r.task_id, r.value, r.iteration)
        new_ids[r.id] = rid
        copy = TaskRun.from_dict({**r.to_dict(), "id": rid, "executionId": new_id,
                                  "parentTaskRunId": new_parent})
        if r.id in chain_ids:
            copy.state = StateValue.new(now, State.RUNNING)
            copy.error = None
            for key in ("fired", "ended", "child", "group", "waiting"):
                copy.meta.pop(key, None)
            child = path_child[r.id]
            if "iteration" in copy.meta and child.iteration is not None:
                copy.meta["iteration"] = child.iteration  # LoopUntil: resume that iteration
        out.append(copy)
    return out


def seed_replay(ex: Execution, old: Execution, from_run: str | None, plan: Plan) -> None:
    """Make the fresh execution ``ex`` a replay of ``old``: its parent and original ids and,
    from ``from_run``, the task runs it keeps (before it starts)."""
    ex.parent_id, ex.original_id = old.id, old.original_id
    if from_run is None:
        return
    for run in replay_runs(old, ex.id, from_run, plan, ex.state.start):
        ex.add(run)
    states = ex.metadata.setdefault("taskStates", {})
    for run in ex.task_runs:
        states[run.task_id] = {"state": run.state.current.value}


__all__ = ["replay_runs", "seed_replay"]
