"""Text task types."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, ClassVar

from pydantic import Field, model_validator

from kray.context import RunContext
from kray.errors import TaskError
from kray.task import RunnableTask

_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


class WordCount(RunnableTask):
    """Count the words of a text, given inline (``text``) or as a ``kray://`` file (``from``).

    Outputs ``words``, ``lines``, ``characters`` and, with ``top``, ``uri``: a JSON file of
    the ``top`` most frequent words. ``kvKey`` also stores the word count in the namespace's
    KV store.
    """

    type_name: ClassVar[str] = "acme.text.WordCount"
    aliases: ClassVar[tuple[str, ...]] = ("com.acme.text.WordCount",)

    text: str | None = Field(None, description="The text to count (a template).")
    from_: str | None = Field(None, alias="from", description="A kray:// file to count.")
    top: int = Field(0, ge=0, description="Also write the N most frequent words to a file.")
    case_sensitive: bool = False
    kv_key: str | None = Field(None, description="Store the word count under this KV key.")

    @model_validator(mode="after")
    def _one_source(self) -> WordCount:
        if (self.text is None) == (self.from_ is None):
            raise ValueError("set exactly one of 'text' or 'from'")
        return self

    def _read(self, ctx: RunContext) -> str:
        if self.text is not None:
            return ctx.render_str(self.text)
        uri = ctx.render_str(self.from_)
        if not uri.startswith("kray://"):
            raise TaskError(f"'from' must be a kray:// URI, got '{uri}'")
        try:
            return ctx.storage.read(uri).decode("utf-8")
        except FileNotFoundError:
            raise TaskError(f"file not found: {uri}") from None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        text = self._read(ctx)
        words = _WORD.findall(text if self.case_sensitive else text.lower())
        outputs: dict[str, Any] = {"words": len(words), "lines": len(text.splitlines()),
                                   "characters": len(text)}
        ctx.logger.info(f"{len(words)} words, {outputs['lines']} lines")
        ctx.metric("words", len(words))
        if self.top:
            ranking = Counter(words).most_common(self.top)
            data = json.dumps([{"word": w, "count": n} for w, n in ranking]).encode()
            outputs["uri"] = ctx.storage.put(ctx.storage_path("top.json"), data)
        if self.kv_key:
            key = ctx.render_str(self.kv_key)
            ctx.kv.set(ctx.namespace, key, len(words))
            ctx.logger.debug(f"stored the count under KV key {key}")
        return outputs
