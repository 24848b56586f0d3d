"""Item files: ``FilterItems`` and ``DeduplicateItems``.

An item file holds one item a line: a JSON value (what ``Write``, scripts and queries write as
JSON lines; a line that is not JSON is the line's text as a string); blank lines are skipped.
Both tasks stream, so files larger than the worker's memory are fine, and write the lines they
keep byte for byte. Per item, the flow's template (``filterCondition``, ``expr``) is rendered
with the item as data: its fields as variables (``{{ value > 3 }}``, as in Kestra; a field
named like one of the task's variables, ``inputs`` say, is left out) and the whole item as
``row`` (``{{ row.value > 3 }}``, also for items that are not objects). The
template is the flow's own; the item is only ever a value, never compiled as a template.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from kray.plugins.core.storage import SCHEME, _check_uri, _Output, _reading, _rows
from pydantic import Field

from kray.errors import KrayError, TaskError
from kray.task import RunnableTask
from kray.templating import is_truthy

if TYPE_CHECKING:
    from kray.context import RunContext

K = "io.kestra.plugin.core.storage."


class FilterType(StrEnum):
    INCLUDE = "INCLUDE"  # keep the items that match
    EXCLUDE = "EXCLUDE"  # drop the items that match


class ErrorOrNullBehavior(StrEnum):
    FAIL = "FAIL"  # fail the task
    INCLUDE = "INCLUDE"  # keep the item
    EXCLUDE = "EXCLUDE"  # drop the item


def parse_item(line: bytes) -> Any:
    """One line as an item: its JSON value, else its text."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        return json.loads(text)
    except ValueError:
        return text


def item_variables(ctx: RunContext, item: Any) -> dict[str, Any]:
    """What a per-item template sees on top of the task's variables: ``row``, and the item's
    fields, except those named like a variable the task already has (``inputs``...)."""
    fields: dict[str, Any] = {}
    if isinstance(item, dict):
        fields = {str(k): v for k, v in item.items() if str(k) not in ctx.variables}
    return {**fields, "row": item}


def iter_lines(ctx: RunContext, uri: str) -> Iterator[bytes]:
    """Each non-blank line of ``uri``, its newline ensured."""
    with _reading(ctx, uri) as f:
        for row in _rows(f, b"\n"):
            if row.strip():
                yield row if row.endswith(b"\n") else row + b"\n"


def iter_items(ctx: RunContext, uri: str) -> Iterator[tuple[bytes, Any]]:
    """Each non-blank line of ``uri`` with its parsed item."""
    for row in iter_lines(ctx, uri):
        yield row, parse_item(row)


def _output_name(task_id: str, uri: str) -> str:
    ext = PurePosixPath(uri[len(SCHEME):]).suffix
    return f"{task_id}{ext if ext and len(ext) <= 16 and ext[1:].isalnum() else '.jsonl'}"


class FilterItems(RunnableTask):
    """Keep (``filterType: INCLUDE``, the default) or drop (``EXCLUDE``) the items of a file
    for which ``filterCondition`` is true: outputs ``uri``, ``processedItemsTotal`` and
    ``droppedItemsTotal``.

    ``filterCondition`` is false when it renders ``false``, ``0``, ``-0`` or nothing, true
    otherwise. When it fails to render on an item, or renders null (nothing),
    ``errorOrNullBehavior`` decides: ``FAIL`` (the default) fails the task, ``INCLUDE`` keeps the
    item, ``EXCLUDE`` drops it.
    """

    type_name: ClassVar[str] = "kray.core.storage.FilterItems"
    aliases: ClassVar[tuple[str, ...]] = (K + "FilterItems",)

    from_: str = Field(alias="from", description="The kray:// file of items.")
    filter_condition: str = Field(description="A template rendered once per item.")
    filter_type: FilterType = FilterType.INCLUDE
    error_or_null_behavior: ErrorOrNullBehavior = ErrorOrNullBehavior.FAIL

    def _keep(self, ctx: RunContext, item: Any, index: int) -> bool:
        try:
            rendered = ctx.render(self.filter_condition, extra=item_variables(ctx, item))
        except KrayError as exc:
            return self._on_error_or_null(f"item {index}: filterCondition failed: {exc}")
        if rendered is None or (isinstance(rendered, str) and not rendered.strip()):
            return self._on_error_or_null(f"item {index}: filterCondition rendered null")
        matched = is_truthy(rendered)
        return matched if self.filter_type == FilterType.INCLUDE else not matched

    def _on_error_or_null(self, message: str) -> bool:
        if self.error_or_null_behavior == ErrorOrNullBehavior.FAIL:
            raise TaskError(message)
        return self.error_or_null_behavior == ErrorOrNullBehavior.INCLUDE

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = _check_uri(ctx.render_str(self.from_), "from")
        out = _Output(ctx, _output_name(self.id, uri))
        processed = dropped = 0
        try:
            for row, item in iter_items(ctx, uri):
                processed += 1
                if self._keep(ctx, item, processed):
                    out.write(row)
                else:
                    dropped += 1
        except BaseException:
            out.abort()
            raise
        ctx.logger.info(f"kept {processed - dropped} of {processed} items")
        return {"uri": out.finish(), "processedItemsTotal": processed,
                "droppedItemsTotal": dropped}


class DeduplicateItems(RunnableTask):
    """Drop the items whose key (``expr``, rendered once per item) was seen on a later item:
    the last item of each key is kept, in the file's order. Outputs ``uri``,
    ``processedItemsTotal`` and ``droppedItemsTotal``.

    Two passes over the file: the first finds the last line of each key (memory grows with
    the number of distinct keys, not with the file), the second writes those lines.
    """

    type_name: ClassVar[str] = "kray.core.storage.DeduplicateItems"
    aliases: ClassVar[tuple[str, ...]] = (K + "DeduplicateItems",)

    from_: str = Field(alias="from", description="The kray:// file of items.")
    expr: str = Field(description="A template rendered once per item: the item's key.")

    def _key(self, ctx: RunContext, item: Any, index: int) -> str:
        try:
            return ctx.render_str(self.expr, extra=item_variables(ctx, item))
        except KrayError as exc:
            raise TaskError(f"item {index}: expr failed: {exc}") from None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = _check_uri(ctx.render_str(self.from_), "from")
        last: dict[str, int] = {}
        processed = 0
        for _row, item in iter_items(ctx, uri):
            processed += 1
            last[self._key(ctx, item, processed)] = processed
        keep = set(last.values())
        del last
        out = _Output(ctx, _output_name(self.id, uri))
        try:
            for index, row in enumerate(iter_lines(ctx, uri), start=1):
                if index in keep:
                    out.write(row)
        except BaseException:
            out.abort()
            raise
        dropped = processed - len(keep)
        ctx.logger.info(f"kept {len(keep)} of {processed} items ({dropped} duplicates)")
        return {"uri": out.finish(), "processedItemsTotal": processed,
                "droppedItemsTotal": dropped}


TASKS = [FilterItems, DeduplicateItems]
