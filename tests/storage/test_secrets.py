"""SecretStore lookups and the Masker, including a secret rendered through a template."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from kray.storage.secrets import Masker, SecretNotFound, SecretStore

from kray.errors import KrayError, TemplateError
from kray.templating import TemplateEngine


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_lookup_order(tmp_path: Path):
    file = tmp_path / "secrets.yml"
    file.write_text("ONLY_FILE: from-file\nBOTH: file-loses\nNUM: 42\n")
    env = {"KRAY_SECRET_BOTH": "plain-wins", "SECRET_BOTH": b64("kestra-loses"),
           "SECRET_KESTRA": b64("dëcoded"), "KRAY_SECRET_PLAIN": "as is"}
    store = SecretStore(env, file)
    assert store.get("BOTH") == "plain-wins"
    assert store.get("KESTRA") == "dëcoded"  # Kestra's SECRET_ vars are base64
    assert store.get("PLAIN") == "as is"
    assert store.get("ONLY_FILE") == "from-file"
    assert store.get("NUM") == "42"
    assert store.names() == ["BOTH", "KESTRA", "NUM", "ONLY_FILE", "PLAIN"]


def test_names_are_upper_cased_for_environment_variables():
    store = SecretStore({"KRAY_SECRET_DB_PASS": "pw", "SECRET_API_KEY": b64("k")})
    assert store.get("db-pass") == "pw"
    assert store.get("api_key") == "k"


def test_base64_without_padding_and_with_newlines():
    store = SecretStore({"SECRET_A": b64("ab").rstrip("="), "SECRET_B": "aGVs\nbG8="})
    assert store.get("A") == "ab"
    assert store.get("B") == "hello"


def test_invalid_base64_names_the_variable_not_the_value():
    store = SecretStore({"SECRET_BAD": "!!not-base64!!"})
    with pytest.raises(KrayError) as info:
        store.get("BAD")
    assert "SECRET_BAD" in str(info.value)
    assert "!!not-base64!!" not in str(info.value)


def test_missing_secret_names_it_and_leaks_nothing(tmp_path: Path):
    file = tmp_path / "s.yml"
    file.write_text("OTHER: file-value-123\n")
    store = SecretStore({"KRAY_SECRET_X": "env-value-456", "SECRET_Y": b64("b64-value-789")}, file)
    with pytest.raises(SecretNotFound) as info:
        store.get("MISSING")
    message = str(info.value)
    assert "'MISSING'" in message
    for leaked in ("file-value-123", "env-value-456", "b64-value-789", b64("b64-value-789")):
        assert leaked not in message
    assert info.value.name == "MISSING"


def test_bad_secrets_file(tmp_path: Path):
    file = tmp_path / "s.yml"
    file.write_text("- a list\n- not a map\n")
    with pytest.raises(KrayError, match="must be a mapping"):
        SecretStore({}, file).get("A")
    with pytest.raises(KrayError, match="does not exist"):
        SecretStore({}, tmp_path / "nope.yml").get("A")


def test_secrets_file_is_reread_when_it_changes(tmp_path: Path):
    import os

    file = tmp_path / "s.yml"
    file.write_text("A: one\n")
    store = SecretStore({}, file)
    assert store.get("A") == "one"
    file.write_text("A: two\n")
    stat = file.stat()
    os.utime(file, (stat.st_atime, stat.st_mtime + 5))
    assert store.get("A") == "two"


SECRET = "p@ss w/rd+é\"x"


@pytest.mark.parametrize("form", [
    SECRET,
    b64(SECRET),
    b64(SECRET).rstrip("="),
    base64.urlsafe_b64encode(SECRET.encode()).decode(),
    quote(SECRET, safe=""),
    quote_plus(SECRET),
    json.dumps(SECRET)[1:-1],
    json.dumps(SECRET, ensure_ascii=False)[1:-1],
])
def test_masker_masks_every_form(form: str):
    masker = Masker()
    masker.add(SECRET)
    assert masker.mask(f"before {form} after") == "before ****** after"


def test_masker_finds_a_secret_inside_longer_base64():
    masker = Masker(["hunter2hunter2"])
    header = "Basic " + b64("admin:hunter2hunter2")
    masked = masker.mask(header)
    assert "******" in masked
    assert b64("admin:hunter2hunter2") not in masked


def test_masker_longest_first_and_values():
    masker = Masker()
    masker.add("abc")
    masker.add("abcdef")
    masker.add("")  # ignored
    masker.add("abc")  # registered once
    assert masker.mask("xabcdefx abc") == "x******x ******"
    assert masker.values() == ["abc", "abcdef"]


def test_masker_with_nothing_registered_returns_the_text():
    masker = Masker()
    text = "nothing to hide"
    assert masker.mask(text) is text
    value = {"a": [text]}
    assert masker.mask_value(value) is value


def test_mask_value_walks_structures():
    masker = Masker(["tok3n"])
    value = {"tok3n-key": ["x tok3n", ("tok3n", 3)], "n": 1, "deep": {"v": "tok3n"}}
    assert masker.mask_value(value) == {
        "******-key": ["x ******", ("******", 3)], "n": 1, "deep": {"v": "******"}}


class SecretServices:
    """Template services backed by a real SecretStore, registering what it hands out."""

    def __init__(self, store: SecretStore, masker: Masker):
        self.store = store
        self.masker = masker

    def secret(self, name: str) -> str:
        value = self.store.get(name)
        self.masker.add(value)
        return value

    def __getattr__(self, name: str) -> Any:  # the other services are not needed here
        raise AttributeError(name)


def test_a_rendered_secret_and_its_encodings_are_masked():
    store = SecretStore({"SECRET_DB_PASSWORD": b64("s3cr3t!Pass")})
    masker = Masker()
    engine = TemplateEngine()
    services = SecretServices(store, masker)
    rendered = engine.render(
        "pw={{ secret('DB_PASSWORD') }} b64={{ secret('DB_PASSWORD') | base64encode }} "
        "url={{ secret('DB_PASSWORD') | urlencode }} json={{ {'p': secret('DB_PASSWORD')} }}",
        {}, services)  # type: ignore[arg-type]
    assert "s3cr3t!Pass" in rendered  # the raw value reaches the task...
    assert masker.mask(rendered) == "pw=****** b64=****** url=****** json={\"p\":\"******\"}"


def test_a_missing_secret_fails_the_render_without_leaking():
    store = SecretStore({"KRAY_SECRET_OTHER": "do-not-show"})
    services = SecretServices(store, Masker())
    with pytest.raises(TemplateError) as info:
        TemplateEngine().render("{{ secret('NOPE') }}", {}, services)  # type: ignore[arg-type]
    assert "secret 'NOPE' not found" in str(info.value)
    assert "do-not-show" not in str(info.value)
    assert isinstance(info.value.__cause__, SecretNotFound)
