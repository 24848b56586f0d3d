"""Settings (config.yaml, KRAY_* variables), credentials kept as hashes, the authenticator,
and the pure helpers behind flow documents. No Ray."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from kray.api.auth import Authenticator, is_open
from kray.config import (AuthSettings, ConfigError, Settings, TokenRecord, basic_header,
                         create_token, hash_password, hash_token, revoke_token, verify_password)
from kray.flowdocs import flow_document, split_documents


def test_password_hashes() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt:") and "s3cret" not in stored
    assert verify_password("s3cret", stored) and not verify_password("s3cret!", stored)
    assert hash_password("s3cret") != stored  # salted
    salt = b"0123456789abcdef"
    pbkdf2 = "pbkdf2_sha256:1000:" + salt.hex() + ":" + hashlib.pbkdf2_hmac(
        "sha256", b"pw", salt, 1000, 32).hex()
    assert verify_password("pw", pbkdf2) and not verify_password("px", pbkdf2)
    for junk in ("", "scrypt:1:2", "md5:abc", "scrypt:x:8:1:00:00"):
        assert not verify_password("pw", junk)


def test_config_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("""server:
  port: 9090
storage:
  url: s3://bucket/prefix
  options: {client_kwargs: {endpoint_url: "http://127.0.0.1:9000"}}
auth:
  basic: {username: ops, password: from-file}
  tokens:
    - name: ci
      hash: "sha256:%s"
""" % ("0" * 64))
    s = Settings.load(tmp_path, env={})
    assert (s.port, s.host, s.storage_url) == (9090, "127.0.0.1", "s3://bucket/prefix")
    assert s.storage_options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    assert verify_password("from-file", s.auth.users["ops"]) and s.auth.configured
    assert s.auth.tokens[0].name == "ci"
    assert s.executor_config().storage_url == "s3://bucket/prefix"

    env = {"KRAY_PORT": "7070", "KRAY_HOST": "0.0.0.0", "KRAY_STORAGE_URL": "gs://b/p",
           "KRAY_STORAGE_OPTIONS": '{"token": "anon"}', "KRAY_BASIC_AUTH": "me:pw:with:colons",
           "KRAY_API_TOKENS": "tok1, tok2"}
    s = Settings.load(tmp_path, env=env, port=6060)
    assert (s.port, s.host, s.storage_url) == (6060, "0.0.0.0", "gs://b/p")
    assert s.storage_options == {"token": "anon"}
    assert verify_password("pw:with:colons", s.auth.users["me"])
    assert hash_token("tok2") in [t.hash for t in s.auth.tokens]
    assert not Settings.load(tmp_path, env={"KRAY_AUTH_ENABLED": "false"}).auth.enabled


@pytest.mark.parametrize("text,path,line", [
    ("server:\n  port: 0\n", "server.port", 2),
    ("server:\n  prot: 1\n", "server.prot", 2),
    ("auth:\n  basic: {username: a}\n", "auth.basic", None),
    ("auth:\n  basic: {username: a, passwordHash: nope}\n", "auth.basic.passwordHash", None),
    ("auth:\n  tokens:\n    - {name: x, hash: plain}\n", "auth.tokens[0].hash", 3),
    ("server: [\n", "", 2),
])
def test_config_errors_name_field_and_line(tmp_path: Path, text: str, path: str,
                                           line: int | None) -> None:
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        Settings.load(tmp_path, env={})
    issue = err.value.issues[0]
    assert issue.path == path and issue.file == str(tmp_path / "config.yaml")
    if line is not None:
        assert issue.line == line


@pytest.mark.parametrize("env", [{"KRAY_PORT": "x"}, {"KRAY_PORT": "70000"},
                                 {"KRAY_BASIC_AUTH": "nopassword"},
                                 {"KRAY_STORAGE_OPTIONS": "[1]"},
                                 {"KRAY_AUTH_ENABLED": "maybe"}])
def test_bad_environment(tmp_path: Path, env: dict) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.load(tmp_path, env=env)
    assert err.value.issues[0].path == next(iter(env))


def test_generated_admin_password_is_printed_once_and_stored_hashed(tmp_path: Path) -> None:
    s = Settings.load(tmp_path, env={})
    assert not s.auth.configured
    password = s.ensure_admin()
    assert password and len(password) >= 20
    stored = (tmp_path / "auth.json").read_text()
    assert password not in stored
    assert (tmp_path / "auth.json").stat().st_mode & 0o077 == 0
    assert verify_password(password, json.loads(stored)["passwordHash"])
    again = Settings.load(tmp_path, env={})
    assert again.ensure_admin() is None  # not generated (nor shown) twice
    assert verify_password(password, again.auth.users["admin"])
    configured = Settings.load(tmp_path, env={"KRAY_BASIC_AUTH": "me:pw"})
    assert configured.ensure_admin() is None and "admin" not in configured.auth.users


def test_tokens(tmp_path: Path) -> None:
    token = create_token(tmp_path, "ci")
    assert token.startswith("kray_") and token not in (tmp_path / "tokens.json").read_text()
    with pytest.raises(Exception, match="already exists"):
        create_token(tmp_path, "ci")
    assert revoke_token(tmp_path, "ci") and not revoke_token(tmp_path, "ci")


def test_authenticator() -> None:
    auth = Authenticator(AuthSettings(users={"ann": hash_password("pw")},
                                      tokens=[TokenRecord("t", hash_token("secret-token"))]))

    def who(header: str | None) -> str | None:
        return asyncio.run(auth.authenticate(header))

    assert who(basic_header("ann", "pw")) == "ann"
    assert who(basic_header("ann", "pw")) == "ann"  # remembered
    assert who(basic_header("ann", "px")) is None
    assert who(basic_header("bob", "pw")) is None
    assert who("Bearer secret-token") == "token" and who("bearer secret-token") == "token"
    for header in (None, "", "Bearer", "Bearer wrong", "Basic ???", "Basic YW5u", "Token x"):
        assert who(header) is None, header
    assert is_open("/health") and is_open("/api/v1/executions/webhook/a/b/c")
    assert not is_open("/api/v1/executions/webhook/a/b") and not is_open("/health/x")
    assert not is_open("/api/v1/executions/webhook/a/b/c/d")


def test_split_documents_and_flow_document() -> None:
    body = "# comment\n---\nid: a\n---   # second\nid: b\n\n---\n"
    docs = split_documents(body)
    assert [(offset, text.splitlines()[1]) for offset, text in docs] == [(1, "id: a"),
                                                                       (3, "id: b")]
    assert split_documents("") == [(0, "")]
    doc = flow_document({"namespace": "n", "id": "a", "revision": 2, "updated": None,
                         "deleted": False, "source": "id: a\nwhen: !!timestamp 2024-01-01\n"
                                                     "blob: !!binary aGk=\nn: .nan\n"})
    assert doc["when"].startswith("2024-01-01") and doc["blob"] == "aGk=" and doc["n"] is None
    assert doc["revision"] == 2 and doc["source"].startswith("id: a")


def test_concurrent_requests_share_one_password_check() -> None:
    auth = Authenticator(AuthSettings(users={"ann": hash_password("pw")}))
    checks = []
    check = auth._basic

    def counted(value: str) -> str | None:
        checks.append(value)
        return check(value)

    auth._basic = counted  # type: ignore[method-assign]

    async def many() -> list[str | None]:
        header = basic_header("ann", "pw")
        return await asyncio.gather(*(auth.authenticate(header) for _ in range(20)))

    assert asyncio.run(many()) == ["ann"] * 20
    assert len(checks) == 1
