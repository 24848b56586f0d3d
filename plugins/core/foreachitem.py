"""``ForEachItem``: one subflow execution per batch of a file's items.

The core stays pure: a flowable cannot read files. So a ForEachItem is composed of three hidden
children, named as in Kestra, that the plan indexes like declared tasks (``child_lists``):

* ``<id>_split``: a runnable ``Split`` of ``items`` into batch files (``batch``: ``rows``,
  ``bytes`` or ``partitions``; one row per batch by default), on a worker;
* ``<id>_items``: a ``Subflow`` run per batch (value = the batch index), whose ``inputs`` and
  ``labels`` may use ``{{ taskrun.items }}`` (the batch file's URI) and
  ``{{ taskrun.iteration }}`` (the batch number, from 1);
* ``<id>_merge``: once every batch ended (with ``wait``), a runnable that writes each batch's
  subflow outputs, one JSON line per batch in batch order, when any subflow had outputs.

The ForEachItem's outputs: ``numberOfBatches``, ``iterations`` (subflow executions counted per
state, kept up to date while they run, e.g. ``{"RUNNING": 2, "SUCCESS": 1}``) and, when merged,
``uri`` (also ``outputs.<id>_merge.subflowOutputs``). Flow validation refuses a declared task
whose id collides with a hidden one.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

from kray.plugins.core.flowable import Subflow
from kray.plugins.core.storage import Split, _Output
from pydantic import Field, PrivateAttr, field_validator, model_validator

from kray.engine.scope import INHERIT, value_str
from kray.engine.state import FAILURES, State, merge_child_states
from kray.task import FlowableTask, Model, RunnableTask, Task

if TYPE_CHECKING:
    from kray.context import RunContext
    from kray.engine.execution import TaskRun
    from kray.engine.scope import Scope

K = "io.kestra.plugin.core.flow."
SUFFIXES = ("_split", "_items", "_merge")
MAX_ID = 100 - max(len(s) for s in SUFFIXES)


class Batch(Model):
    """``batch:``: how ``items`` is cut. At most one of ``rows`` (default 1), ``bytes`` (e.g.
    ``"10MB"``) or ``partitions``."""

    rows: int | str | None = None
    bytes_: int | str | None = Field(None, alias="bytes")
    partitions: int | str | None = None
    separator: str = "\n"

    @model_validator(mode="after")
    def _one_mode(self) -> Batch:
        given = [n for n in ("rows", "bytes_", "partitions") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError("set at most one of 'rows', 'bytes' or 'partitions'")
        return self

    def split_properties(self) -> dict[str, Any]:
        if self.bytes_ is not None:
            return {"bytes": self.bytes_}
        if self.partitions is not None:
            return {"partitions": self.partitions}
        return {"rows": self.rows if self.rows is not None else 1}


class _ItemsScope:
    """The scope as one batch's Subflow sees it: its templates also get ``taskrun.items`` and
    ``taskrun.iteration``. Everything else is the real scope."""

    def __init__(self, scope: Scope, items: str, iteration: int) -> None:
        self._scope = scope
        self._items = items
        self._iteration = iteration

    def render_value(self, value: Any, run: TaskRun, task: Task) -> Any:
        variables = self._scope.variables(run, task)
        variables["taskrun"] = {**variables["taskrun"], "items": self._items,
                                "iteration": self._iteration}
        return self._scope.plan.renderer.render_value(value, variables)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scope, name)


class BatchSubflow(Subflow):
    """Hidden ``<id>_items`` child of a ForEachItem: the Subflow of one batch (run value =
    batch index; ``meta["items"]`` = the batch file's URI)."""

    type_name: ClassVar[str] = "kray.core.flow.ForEachItem$Items"
    aliases: ClassVar[tuple[str, ...]] = ()

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        items = _ItemsScope(scope, run.meta["items"], int(run.value) + 1)
        return super().advance(items, run)  # type: ignore[arg-type]


class MergeOutputs(RunnableTask):
    """Hidden ``<id>_merge`` child of a ForEachItem: writes the batches' subflow outputs, one
    JSON line per batch in batch order (``{}`` for a batch without outputs). Outputs
    ``subflowOutputs`` and ``uri`` (the same file)."""

    type_name: ClassVar[str] = "kray.core.flow.ForEachItem$Merge"
    aliases: ClassVar[tuple[str, ...]] = ()

    source: str  # renders the batch runs' outputs, by value, as JSON

    def run(self, ctx: RunContext) -> dict[str, Any]:
        tree = json.loads(ctx.render_str(self.source))
        # Below a ForEach, the batch outputs sit under the ForEach values: the run's value is
        # that path (None at the top level).
        path = ctx.variables["taskrun"].get("value")
        for value in path if isinstance(path, list) else []:
            tree = tree[value_str(value)]
        out = _Output(ctx, f"{self.id}.jsonl")
        try:
            for key in sorted(tree, key=int):
                outputs = (tree[key] or {}).get("outputs") or {}
                out.write(json.dumps(outputs, separators=(",", ":"), default=str).encode()
                          + b"\n")
        except BaseException:
            out.abort()
            raise
        uri = out.finish()
        return {"subflowOutputs": uri, "uri": uri}


class ForEachItem(FlowableTask):
    """Start one execution of the flow ``namespace``/``flowId`` per batch of ``items`` (a
    ``kray://`` file, one item a line), with ``inputs`` rendered per batch
    (``{{ taskrun.items }}``: the batch file; ``{{ taskrun.iteration }}``: its number from 1).

    With ``wait`` (the default) the task ends once every subflow ended; with
    ``transmitFailed`` (the default) it fails when one of them failed (all batches still run).
    ``concurrencyLimit`` (**kray**; 0, the default, starts every batch at once) caps the batches
    running at a time. Outputs ``numberOfBatches``, ``iterations`` (count per subflow state)
    and, when the subflows declare outputs, ``uri`` (one JSON line of outputs per batch).
    """

    type_name: ClassVar[str] = "kray.core.flow.ForEachItem"
    aliases: ClassVar[tuple[str, ...]] = (K + "ForEachItem", "io.kestra.core.tasks.flows.ForEachItem")

    items: str
    batch: Batch = Field(default_factory=Batch)
    namespace: str
    flow_id: str
    revision: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] | list[dict[str, str]] = Field(default_factory=dict)
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False
    concurrency_limit: int = Field(0, ge=0)

    _hidden: tuple[Split, BatchSubflow, MergeOutputs] | None = PrivateAttr(None)

    @field_validator("id")
    @classmethod
    def _short_enough(cls, v: str) -> str:
        if len(v) > MAX_ID:
            raise ValueError(f"a ForEachItem id has at most {MAX_ID} characters (kray adds "
                             f"'{v}_split', '_items' and '_merge' tasks)")
        return v

    def hidden(self) -> tuple[Split, BatchSubflow, MergeOutputs]:
        """The hidden children, built once per task instance."""
        if self._hidden is None:
            split = Split.model_validate({
                "id": f"{self.id}_split", "type": "kray.core.flow.ForEachItem$Split",
                "from": self.items, "separator": self.batch.separator,
                **self.batch.split_properties()})
            batches = BatchSubflow.model_validate({
                "id": f"{self.id}_items", "type": BatchSubflow.type_name,
                "namespace": self.namespace, "flowId": self.flow_id,
                "revision": self.revision, "inputs": self.inputs, "labels": self.labels,
                "wait": self.wait, "transmitFailed": self.transmit_failed,
                "inheritLabels": self.inherit_labels})
            merge = MergeOutputs.model_validate({
                "id": f"{self.id}_merge", "type": MergeOutputs.type_name,
                "source": f"{{{{ outputs['{self.id}_items'] | toJson }}}}"})
            self._hidden = (split, batches, merge)
        return self._hidden

    def child_lists(self) -> list[list[Task]]:
        return [list(self.hidden())]

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        split, batches, merge = self.hidden()
        state = scope.run_one(split, run)
        if state is None:
            return None
        if state in FAILURES:
            return state
        split_run = scope.find(split, run)
        uris: list[str] = list(split_run.outputs.get("uris") or []) if split_run else []
        states, counts, running = self._batches(scope, run, batches, uris)
        outputs: dict[str, Any] = {"numberOfBatches": len(uris), "iterations": dict(counts)}
        if running:
            self._publish(scope, run, outputs)
            return None
        final = merge_child_states(states)
        if self.wait and self._has_outputs(scope, run, batches, len(uris)):
            value = list(run.meta.get("vp", ())) or INHERIT
            merged = scope.run_one(merge, run, value)
            if merged is None:
                self._publish(scope, run, outputs)
                return None
            merge_run = scope.find(merge, run, value)
            if merge_run is not None and merge_run.outputs.get("uri"):
                outputs["uri"] = merge_run.outputs["uri"]
            final = merge_child_states([final, merged])
        self._publish(scope, run, outputs)
        return final

    def _batches(self, scope: Scope, run: TaskRun, batches: BatchSubflow,
                 uris: list[str]) -> tuple[list[State], Counter[str], bool]:
        """Start and advance the batch runs; their terminal states, the subflow executions
        counted per state, and whether any batch is still to end."""
        settled: dict[int, tuple[State, str]] = run.cache.setdefault("settled", {})
        states: list[State] = []
        counts: Counter[str] = Counter()
        limit, active, running = self.concurrency_limit, 0, False
        for index, uri in enumerate(uris):
            if index in settled:
                state, child = settled[index]
                states.append(state)
                counts[child] += 1
                continue
            batch = scope.find(batches, run, index)
            if batch is None:
                if limit and active >= limit:
                    counts["CREATED"] += 1
                    running = True
                    continue
                batch = scope.create(batches, run, index)
                batch.meta["items"] = uri
            scope.run_one(batches, run, index, run=batch)
            if batch.state.current.terminal:
                child = str(batch.outputs.get("state") or (
                    State.CREATED.value if batch.meta.get("child") else
                    batch.state.current.value))
                settled[index] = (batch.state.current, child)
                states.append(batch.state.current)
                counts[child] += 1
            else:
                active += 1
                running = True
                counts[State.RUNNING.value] += 1
        return states, counts, running

    @staticmethod
    def _has_outputs(scope: Scope, run: TaskRun, batches: BatchSubflow, n: int) -> bool:
        for index in range(n):
            batch = scope.find(batches, run, index)
            if batch is not None and batch.outputs.get("outputs"):
                return True
        return False

    @staticmethod
    def _publish(scope: Scope, run: TaskRun, outputs: dict[str, Any]) -> None:
        if run.outputs != outputs:
            scope.set_outputs(run, outputs)


TASKS = [ForEachItem]

__all__ = ["TASKS", "Batch", "BatchSubflow", "ForEachItem", "MergeOutputs"]
