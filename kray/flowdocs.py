"""Pure helpers for flow documents the API shows and takes: multi-document YAML bodies, and a
stored flow revision as JSON."""

from __future__ import annotations

import base64
import math
import re
from datetime import date, datetime, time
from typing import Any

from kray.errors import FlowValidationError

_DOCUMENT_START = re.compile(r"^---[ \t]*(#.*)?$")


def split_documents(source: str) -> list[tuple[int, str]]:
    """The documents of a multi-document YAML text, each with the number of lines before it
    (so an issue's line can be counted from the start of the whole text). Documents holding
    only blanks and comments are skipped, unless all are."""
    docs: list[tuple[int, list[str]]] = [(0, [])]
    for number, line in enumerate(source.splitlines(keepends=True)):
        if _DOCUMENT_START.match(line.rstrip("\r\n")):
            docs.append((number, [line]))
        else:
            docs[-1][1].append(line)
    texts = [(offset, "".join(lines)) for offset, lines in docs]
    meaningful = [(offset, text) for offset, text in texts if any(
        ln.strip() and not ln.lstrip().startswith("#") and not _DOCUMENT_START.match(ln.strip())
        for ln in text.splitlines())]
    return meaningful or [texts[0]]


def flow_document(row: dict[str, Any], with_source: bool = True) -> dict[str, Any]:
    """A stored flow revision as the API shows it: the YAML's fields (as JSON) and
    ``id``, ``namespace``, ``revision``, ``updated``, ``deleted`` and ``source``."""
    from kray.flow.yaml import load_yaml
    try:
        data = load_yaml(row["source"]).data
    except FlowValidationError:
        data = None
    doc = {str(k): _jsonable(v) for k, v in data.items()} if isinstance(data, dict) else {}
    doc.update(id=row["id"], namespace=row["namespace"], revision=row["revision"],
               updated=row["updated"], deleted=row["deleted"])
    if with_source:
        doc["source"] = row["source"]
    return doc


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


__all__ = ["split_documents", "flow_document"]
