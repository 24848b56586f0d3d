"""The HTTP address guard: link-local and metadata addresses are refused, also after a
redirect; loopback stays allowed; the environment switches work."""

from __future__ import annotations

import pytest
from kray.plugins.http.guard import AddressPolicy, BlockedAddress

from kray.testing import TaskRunner

REQUEST = "io.kestra.plugin.core.http.Request"


@pytest.mark.parametrize("uri", [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1:8080/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:169.254.169.254]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://100.100.100.200/",
])
def test_metadata_and_link_local_refused(runner: TaskRunner, uri: str) -> None:
    result = runner.run({"id": "r", "type": REQUEST, "uri": uri,
                         "options": {"connectTimeout": "PT0.5S"}})
    assert result.state == "FAILED"
    assert "refused to connect" in (result.error or ""), result.error


def test_redirect_to_metadata_refused(runner: TaskRunner, server: str) -> None:
    for task in ("io.kestra.plugin.core.http.Request", "io.kestra.plugin.core.http.Download"):
        result = runner.run({"id": "r", "type": task,
                             "uri": f"{server}/redirect?to=http://169.254.169.254/latest/"})
        assert result.state == "FAILED"
        assert "refused to connect to '169.254.169.254'" in (result.error or ""), result.error


def test_loopback_allowed(runner: TaskRunner, server: str) -> None:
    host = server.rsplit(":", 1)[1]
    result = runner.run({"id": "r", "type": REQUEST, "uri": f"http://localhost:{host}/echo"})
    assert result.state == "SUCCESS", result.error


def test_allow_switch_lifts_the_builtin_rules(runner: TaskRunner,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAY_HTTP_ALLOW_LINK_LOCAL", "1")
    result = runner.run({"id": "r", "type": REQUEST, "uri": "http://169.254.0.9:9/",
                         "options": {"connectTimeout": "PT0.3S"}})
    assert result.state == "FAILED"  # nothing answers there, but the guard let it try
    assert "refused to connect" not in (result.error or "")


def test_deny_list(runner: TaskRunner, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAY_HTTP_DENY", "127.0.0.0/8")
    result = runner.run({"id": "r", "type": REQUEST, "uri": f"{server}/echo"})
    assert result.state == "FAILED"
    assert "127.0.0.0/8 is listed in KRAY_HTTP_DENY" in (result.error or "")
    monkeypatch.setenv("KRAY_HTTP_DENY", "not-a-net")
    result = runner.run({"id": "r", "type": REQUEST, "uri": f"{server}/echo"})
    assert result.state == "FAILED" and "not a network" in (result.error or "")


def test_policy_rules() -> None:
    policy = AddressPolicy()
    policy.check_address("h", "127.0.0.1")
    policy.check_address("h", "10.1.2.3")
    policy.check_address("h", "::1")
    for address in ("169.254.169.254", "fe80::1%eth0", "fd00:ec2::254", "::ffff:169.254.0.1"):
        with pytest.raises(BlockedAddress):
            policy.check_address("h", address)
    with pytest.raises(BlockedAddress):
        policy.check_host("METADATA.google.internal.")
    AddressPolicy(builtin=False).check_address("h", "169.254.169.254")
    env = AddressPolicy.from_env({"KRAY_HTTP_ALLOW_LINK_LOCAL": "true",
                                  "KRAY_HTTP_DENY": "10.0.0.0/8, fd00::/8"})
    assert not env.builtin and len(env.deny) == 2
