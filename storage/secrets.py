"""Secrets: where ``secret('NAME')`` reads from, and the masker that keeps them out of logs.

Lookup order for ``NAME``:

1. ``KRAY_SECRET_NAME``: the value as is (kray's own convention);
2. ``SECRET_NAME``: base64-encoded, as Kestra's open-source edition reads secrets, so a Kestra
   deployment's environment works unchanged;
3. the secrets file, a YAML mapping ``NAME: value``.

Environment variable names are tried with the name as given, then upper-cased (``db-pass`` ->
``DB_PASS``). Errors name the secret, never a value.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import yaml

from kray.errors import KrayError

PLAIN_PREFIX = "KRAY_SECRET_"
KESTRA_PREFIX = "SECRET_"


class SecretNotFound(KrayError):
    """No secret with this name. The message names the secret only."""

    def __init__(self, name: str, detail: str = ""):
        self.name = name
        super().__init__(f"secret '{name}' not found{detail}")


def _env_names(name: str) -> list[str]:
    upper = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
    return [name] if upper == name else [name, upper]


class SecretStore:
    """Reads secrets from the environment and an optional YAML secrets file."""

    def __init__(self, environ: Mapping[str, str] | None = None,
                 secrets_file: str | Path | None = None):
        self._environ = os.environ if environ is None else environ
        self._file = Path(secrets_file) if secrets_file is not None else None
        self._file_cache: tuple[float, dict[str, str]] | None = None
        self._lock = threading.Lock()

    def get(self, name: str) -> str:
        if not name:
            raise SecretNotFound(name, ": a secret name cannot be empty")
        for candidate in _env_names(name):
            value = self._environ.get(PLAIN_PREFIX + candidate)
            if value is not None:
                return value
        for candidate in _env_names(name):
            encoded = self._environ.get(KESTRA_PREFIX + candidate)
            if encoded is not None:
                return self._decode(name, KESTRA_PREFIX + candidate, encoded)
        secrets = self._file_secrets()
        if name in secrets:
            return secrets[name]
        where = [f"{PLAIN_PREFIX}{n} / {KESTRA_PREFIX}{n}" for n in _env_names(name)]
        if self._file is not None:
            where.append(str(self._file))
        raise SecretNotFound(name, f" (looked in {', '.join(where)})")

    def names(self) -> list[str]:
        found = set(self._file_secrets())
        for key in self._environ:
            for prefix in (PLAIN_PREFIX, KESTRA_PREFIX):
                if key.startswith(prefix) and len(key) > len(prefix):
                    found.add(key[len(prefix):])
        return sorted(found)

    @staticmethod
    def _decode(name: str, variable: str, encoded: str) -> str:
        text = "".join(encoded.split())
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise KrayError(f"secret '{name}': {variable} is not base64-encoded UTF-8 "
                            f"(Kestra's SECRET_ variables are base64; use {PLAIN_PREFIX}"
                            f"{variable[len(KESTRA_PREFIX):]} for a plain value)") from None

    def _file_secrets(self) -> dict[str, str]:
        if self._file is None:
            return {}
        try:
            mtime = self._file.stat().st_mtime
        except FileNotFoundError:
            raise KrayError(f"secrets file {self._file} does not exist") from None
        with self._lock:
            if self._file_cache is not None and self._file_cache[0] == mtime:
                return self._file_cache[1]
        try:
            data = yaml.safe_load(self._file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise KrayError(f"secrets file {self._file} is not valid YAML{where}") from None
        if not isinstance(data, dict):
            raise KrayError(f"secrets file {self._file} must be a mapping of NAME: value")
        secrets = {str(k): v if isinstance(v, str) else json.dumps(v) if isinstance(v, (dict, list))
                   else str(v) for k, v in data.items() if v is not None}
        with self._lock:
            self._file_cache = (mtime, secrets)
        return secrets


def _b64_forms(raw: bytes) -> set[str]:
    """The value base64-encoded, standard and URL-safe, with and without padding, and as it
    appears inside a longer base64 text (the three byte alignments; only the characters that
    depend on the value alone, e.g. a password inside ``Basic dXNlcjpwYXNz``)."""
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        full = encode(raw).decode("ascii")
        forms.update({full, full.rstrip("=")})
        for shift in (1, 2):
            shifted = encode(b"\0" * shift + raw).decode("ascii").rstrip("=")
            start = -(-shift * 8 // 6)  # ceil(shift * 8 / 6)
            end = (shift + len(raw)) * 8 // 6
            inner = shifted[start:end]
            if len(inner) >= 8:
                forms.add(inner)
    return forms


class Masker:
    """Replaces every registered secret, and its simple encodings, with ``******``."""

    MASK = "******"

    def __init__(self, values: Iterable[str] = ()):
        self._values: list[str] = []
        self._forms: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        """Register a secret value and its base64, URL-encoded and JSON-escaped forms."""
        if not isinstance(value, str) or not value:
            return
        forms = {value, quote(value, safe=""), quote(value), quote_plus(value),
                 json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
        forms |= _b64_forms(value.encode("utf-8"))
        forms.discard("")
        with self._lock:
            if value not in self._values:
                self._values.append(value)
            if forms <= self._forms:
                return
            self._forms |= forms
            ordered = sorted(self._forms, key=len, reverse=True)  # longest first
            self._regex = re.compile("|".join(re.escape(f) for f in ordered))

    def mask(self, text: str) -> str:
        regex = self._regex
        if regex is None or not text:
            return text
        return regex.sub(self.MASK, text)

    def mask_value(self, obj: Any) -> Any:
        """Mask every string inside dicts (keys too), lists and tuples."""
        if self._regex is None:
            return obj
        if isinstance(obj, str):
            return self.mask(obj)
        if isinstance(obj, Mapping):
            return {self.mask_value(k): self.mask_value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.mask_value(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.mask_value(v) for v in obj)
        return obj

    def values(self) -> list[str]:
        """The raw registered secrets, e.g. to build a worker's own masker."""
        return list(self._values)
