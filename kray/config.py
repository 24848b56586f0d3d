"""Server settings: one data folder, a YAML configuration file and ``KRAY_*`` variables.

Precedence, lowest first: defaults, ``<data-dir>/config.yaml`` (or ``--config`` /
``KRAY_CONFIG``), ``KRAY_*`` environment variables, command-line flags.

The data folder holds everything a server owns: the DuckDB file (``kray.duckdb``), internal
storage (``storage/`` unless a storage URL says otherwise), ``config.yaml``, and the credential
files ``auth.json`` (a generated admin password's hash) and ``tokens.json`` (API token hashes).
Only hashes of passwords and tokens are ever written: passwords with scrypt (pbkdf2 read too),
tokens, which are long and random, with SHA-256.

``config.yaml``::

    server: {host: 127.0.0.1, port: 8080}
    storage: {url: s3://bucket/prefix, options: {client_kwargs: {endpoint_url: ...}}}
    secrets: {file: /etc/kray/secrets.env}
    auth:
      enabled: true                       # false only for a trusted, private network
      basic: {username: admin, password: secret}   # or passwordHash: scrypt:...
      tokens: [{name: ci, hash: "sha256:..."}]

Environment: ``KRAY_DATA_DIR``, ``KRAY_CONFIG``, ``KRAY_HOST``, ``KRAY_PORT``,
``KRAY_STORAGE_URL``, ``KRAY_STORAGE_OPTIONS`` (JSON), ``KRAY_SECRETS_FILE``,
``KRAY_BASIC_AUTH`` (``user:password``), ``KRAY_API_TOKENS`` (comma-separated tokens),
``KRAY_AUTH_ENABLED`` (true/false).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kray.errors import FlowValidationError, Issue, KrayError

DEFAULT_DATA_DIR = ".kray"
DEFAULT_PORT = 8080
CONFIG_FILE = "config.yaml"
AUTH_FILE = "auth.json"
TOKENS_FILE = "tokens.json"
TOKEN_PREFIX = "kray_"
_ALPHABET = string.ascii_letters + string.digits
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class ConfigError(FlowValidationError):
    """The configuration file or a ``KRAY_*`` variable is invalid; every issue is listed."""


# -- credentials ---------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """``scrypt:n:r:p:salt:hash`` (hex), for a password a person chose or was given."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt:{_SCRYPT['n']}:{_SCRYPT['r']}:{_SCRYPT['p']}:{salt.hex()}:{digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a stored hash (scrypt or pbkdf2_sha256), in constant time."""
    parts = stored.split(":")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(x) for x in parts[1:4])
            salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
            digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                                    dklen=len(expected), maxmem=2**27)
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            salt, expected = bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
            digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(parts[1]),
                                         len(expected))
        else:
            return False
    except (ValueError, OverflowError):
        return False
    return hmac.compare_digest(digest, expected)


def check_password_hash(stored: str) -> str | None:
    """Why ``stored`` is not a usable password hash, or None."""
    parts = stored.split(":")
    if parts[0] == "scrypt" and len(parts) == 6 or parts[0] == "pbkdf2_sha256" \
            and len(parts) == 4:
        try:
            [int(x) for x in parts[1:-2]]
            bytes.fromhex(parts[-2]), bytes.fromhex(parts[-1])
            return None
        except ValueError:
            pass
    return "expected 'scrypt:N:R:P:SALT:HASH' or 'pbkdf2_sha256:ITERATIONS:SALT:HASH'"


def new_token() -> str:
    return TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(40))


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(24))


# -- the configuration file ------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Server(_Model):
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)


class _Storage(_Model):
    url: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class _Secrets(_Model):
    file: str | None = None


class _Basic(_Model):
    username: str = Field(min_length=1)
    password: str | None = Field(None, min_length=1)
    password_hash: str | None = Field(None, alias="passwordHash")


class _Token(_Model):
    name: str = Field(min_length=1)
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class _Auth(_Model):
    enabled: bool = True
    basic: _Basic | None = None
    tokens: list[_Token] = Field(default_factory=list)


class _File(_Model):
    server: _Server = Field(default_factory=lambda: _Server())
    storage: _Storage = Field(default_factory=lambda: _Storage())
    secrets: _Secrets = Field(default_factory=lambda: _Secrets())
    auth: _Auth = Field(default_factory=lambda: _Auth())


@dataclass
class TokenRecord:
    name: str
    hash: str
    created: str | None = None


@dataclass
class AuthSettings:
    """Who may call the API. Passwords and tokens are held as hashes only."""

    enabled: bool = True
    users: dict[str, str] = field(default_factory=dict)  # username -> password hash
    tokens: list[TokenRecord] = field(default_factory=list)
    tokens_file: Path | None = None  # re-read while the server runs (``token create``)

    @property
    def configured(self) -> bool:
        return bool(self.users or self.tokens or self.file_tokens())

    def file_tokens(self) -> list[TokenRecord]:
        return read_tokens(self.tokens_file) if self.tokens_file else []


@dataclass
class Settings:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    storage_url: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)
    secrets_file: str | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)
    config_file: Path | None = None

    @classmethod
    def load(cls, data_dir: str | Path | None = None, *, config_file: str | Path | None = None,
             env: Mapping[str, str] | None = None, host: str | None = None,
             port: int | None = None) -> Settings:
        """Settings from the configuration file, the environment and explicit arguments."""
        env = os.environ if env is None else env
        data = Path(data_dir or env.get("KRAY_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
        explicit = config_file or env.get("KRAY_CONFIG")
        path = Path(explicit) if explicit else data / CONFIG_FILE
        if explicit and not path.is_file():
            raise ConfigError([Issue("configuration file not found", "", str(path))])
        parsed = _read_config(path) if path.is_file() else _File()
        s = cls(data_dir=data, config_file=path if path.is_file() else None)
        s.auth.tokens_file = data / TOKENS_FILE
        s._apply_file(parsed, path)
        s._apply_env(env)
        if host is not None:
            s.host = host
        if port is not None:
            s.port = port
        return s

    def _apply_file(self, f: _File, path: Path) -> None:
        self.host = f.server.host or self.host
        self.port = f.server.port or self.port
        self.storage_url = f.storage.url
        self.storage_options = dict(f.storage.options)
        self.secrets_file = f.secrets.file
        self.auth.enabled = f.auth.enabled
        if f.auth.basic is not None:
            b = f.auth.basic
            if (b.password is None) == (b.password_hash is None):
                raise ConfigError([Issue("give exactly one of password and passwordHash",
                                         "auth.basic", str(path))])
            if b.password_hash is not None:
                problem = check_password_hash(b.password_hash)
                if problem:
                    raise ConfigError([Issue(problem, "auth.basic.passwordHash", str(path))])
            self.auth.users[b.username] = b.password_hash or hash_password(b.password or "")
        self.auth.tokens = [TokenRecord(t.name, t.hash) for t in f.auth.tokens]

    def _apply_env(self, env: Mapping[str, str]) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError([Issue(f"{name}: {why}", name)])

        self.host = env.get("KRAY_HOST") or self.host
        if env.get("KRAY_PORT"):
            try:
                self.port = int(env["KRAY_PORT"])
            except ValueError:
                raise bad("KRAY_PORT", "not a port number") from None
            if not 0 < self.port < 65536:
                raise bad("KRAY_PORT", "not a port number")
        self.storage_url = env.get("KRAY_STORAGE_URL") or self.storage_url
        if env.get("KRAY_STORAGE_OPTIONS"):
            try:
                options = json.loads(env["KRAY_STORAGE_OPTIONS"])
            except ValueError as e:
                raise bad("KRAY_STORAGE_OPTIONS", f"not JSON: {e}") from None
            if not isinstance(options, dict):
                raise bad("KRAY_STORAGE_OPTIONS", "must be a JSON object")
            self.storage_options = options
        self.secrets_file = env.get("KRAY_SECRETS_FILE") or self.secrets_file
        if env.get("KRAY_AUTH_ENABLED"):
            value = env["KRAY_AUTH_ENABLED"].strip().lower()
            if value not in ("true", "false", "1", "0", "yes", "no"):
                raise bad("KRAY_AUTH_ENABLED", "use true or false")
            self.auth.enabled = value in ("true", "1", "yes")
        if env.get("KRAY_BASIC_AUTH"):
            user, sep, password = env["KRAY_BASIC_AUTH"].partition(":")
            if not sep or not user or not password:
                raise bad("KRAY_BASIC_AUTH", "expected user:password")
            self.auth.users[user] = hash_password(password)
        for token in filter(None, (t.strip() for t in env.get("KRAY_API_TOKENS", "").split(","))):
            self.auth.tokens.append(TokenRecord("env", hash_token(token)))

    # -- derived ---------------------------------------------------------------------------
    @property
    def auth_file(self) -> Path:
        return self.data_dir / AUTH_FILE

    def executor_config(self, **extra: Any) -> Any:
        from kray.executor import ExecutorConfig
        return ExecutorConfig(data_dir=str(self.data_dir), storage_url=self.storage_url,
                              storage_options=dict(self.storage_options),
                              secrets_file=self.secrets_file, **extra)

    def ensure_admin(self, username: str = "admin") -> str | None:
        """With auth on and nothing configured: the admin password generated on a first start
        (returned once, to be printed; only its hash is stored), or the hash stored then."""
        if not self.auth.enabled or self.auth.configured:
            return None
        stored = _read_json(self.auth_file)
        if isinstance(stored, dict) and stored.get("username") and stored.get("passwordHash"):
            self.auth.users[str(stored["username"])] = str(stored["passwordHash"])
            return None
        password = new_password()
        hashed = hash_password(password)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _write_private(self.auth_file, {"username": username, "passwordHash": hashed,
                                        "created": _now()})
        self.auth.users[username] = hashed
        return password


# -- token files -------------------------------------------------------------------------
def read_tokens(path: Path) -> list[TokenRecord]:
    data = _read_json(path)
    if not isinstance(data, list):
        return []
    return [TokenRecord(str(d["name"]), str(d["hash"]), d.get("created")) for d in data
            if isinstance(d, dict) and "name" in d and "hash" in d]


def create_token(data_dir: str | Path, name: str) -> str:
    """A new API token: its hash is appended to ``tokens.json``; the token is returned once."""
    if not name or not name.strip():
        raise KrayError("a token needs a name")
    path = Path(data_dir) / TOKENS_FILE
    records = read_tokens(path)
    if any(r.name == name for r in records):
        raise KrayError(f"a token named {name!r} already exists; revoke it first")
    token = new_token()
    records.append(TokenRecord(name, hash_token(token), _now()))
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    _write_private(path, [r.__dict__ for r in records])
    return token


def revoke_token(data_dir: str | Path, name: str) -> bool:
    path = Path(data_dir) / TOKENS_FILE
    records = read_tokens(path)
    kept = [r for r in records if r.name != name]
    if len(kept) == len(records):
        return False
    _write_private(path, [r.__dict__ for r in kept])
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_private(path: Path, data: Any) -> None:
    """Write a credentials file readable by its owner only, atomically."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def _read_config(path: Path) -> _File:
    from kray.flow.yaml import format_path, load_yaml
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Issue(f"cannot read the configuration: {e}", "", str(path))]) from e
    try:
        loaded = load_yaml(text, str(path))
    except FlowValidationError as e:
        raise ConfigError(e.issues) from None
    if loaded.issues:
        raise ConfigError(loaded.issues)
    try:
        return _File.model_validate(loaded.data or {})
    except ValidationError as e:
        issues = []
        for err in e.errors():
            loc = tuple(err["loc"])
            line, col = loaded.positions.value(loc) or (None, None)
            issues.append(Issue(err["msg"], format_path(loc), str(path), line, col))
        raise ConfigError(issues) from None


def basic_header(username: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


__all__ = ["Settings", "AuthSettings", "TokenRecord", "ConfigError", "hash_password",
           "verify_password", "hash_token", "new_token", "create_token", "revoke_token",
           "read_tokens", "basic_header"]
