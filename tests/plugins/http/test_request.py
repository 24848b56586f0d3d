"""``http.Request`` against a real server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from kray.testing import TaskRunner
from tests.plugins.conftest import SECRET

REQUEST = "io.kestra.plugin.core.http.Request"


def request(runner: TaskRunner, uri: str, **props: object):
    return runner.run({"id": "req", "type": REQUEST, "uri": uri, **props})


def test_get_json(runner: TaskRunner, server: str) -> None:
    result = runner.run({"id": "req", "type": "kray.http.Request",
                         "uri": "{{ inputs.base }}/echo?q=1"}, {"inputs": {"base": server}})
    assert result.state == "SUCCESS", result.error
    out = result.outputs
    assert out["code"] == 200
    assert out["uri"] == f"{server}/echo?q=1"
    assert out["headers"]["Content-Type"] == ["application/json"]
    doc = json.loads(out["body"])
    assert doc["method"] == "GET" and doc["path"] == "/echo?q=1"
    assert f"GET {server}/echo?q=1" in result.messages
    assert "HTTP 200 OK from GET" in result.messages[1]


def test_post_json_body_headers_and_content_type(runner: TaskRunner, server: str) -> None:
    result = runner.run(
        {"id": "req", "type": REQUEST, "uri": f"{server}/echo", "method": "post",
         "body": {"name": "{{ inputs.who }}", "n": 2},
         "headers": {"X-Trace": "t-{{ inputs.who }}"}}, {"inputs": {"who": "kray"}})
    assert result.state == "SUCCESS", result.error
    doc = json.loads(result.outputs["body"])
    assert doc["method"] == "POST"
    assert json.loads(doc["body"]) == {"name": "kray", "n": 2}
    assert doc["headers"]["content-type"] == "application/json"
    assert doc["headers"]["x-trace"] == "t-kray"


def test_string_body_with_content_type(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/echo", method="PUT", body="a=1\nb=2",
                     contentType="text/plain")
    doc = json.loads(result.outputs["body"])
    assert doc["method"] == "PUT" and doc["body"] == "a=1\nb=2"
    assert doc["headers"]["content-type"] == "text/plain"


def test_form_data_is_url_encoded(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/echo", method="POST",
                     formData={"a": "x y", "b": True})
    doc = json.loads(result.outputs["body"])
    assert doc["body"] == "a=x+y&b=true"
    assert doc["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_multipart_uploads_storage_files(runner: TaskRunner, server: str) -> None:
    uri = runner.storage.put("inputs/data.csv", b"a,b\n1,2\n")
    result = request(runner, f"{server}/echo", method="POST",
                     contentType="multipart/form-data", formData={"file": uri, "kind": "csv"})
    assert result.state == "SUCCESS", result.error
    doc = json.loads(result.outputs["body"])
    assert doc["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert 'filename="data.csv"' in doc["body"] and "a,b\n1,2\n" in doc["body"]
    assert 'name="kind"' in doc["body"]


def test_error_status_fails_with_body_snippet(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/status/404")
    assert result.state == "FAILED"
    assert "returned HTTP 404 Not Found: status 404 body" in (result.error or "")


@pytest.mark.parametrize("props", [{"allowFailed": True}, {"options": {"allowFailed": True}},
                                   {"options": {"allowedResponseCodes": [500]}}])
def test_allow_failed(runner: TaskRunner, server: str, props: dict) -> None:
    result = request(runner, f"{server}/status/500", **props)
    assert result.state == "SUCCESS", result.error
    assert result.outputs["code"] == 500 and result.outputs["body"] == "status 500 body"


def test_allowed_response_codes_reject_others(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/echo", options={"allowedResponseCodes": [201]})
    assert result.state == "FAILED" and "HTTP 200" in (result.error or "")


def test_redirects_followed_or_not(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/redirect?to=/echo")
    assert result.outputs["code"] == 200 and result.outputs["uri"] == f"{server}/echo"
    result = request(runner, f"{server}/redirect?to=/echo", options={"followRedirects": False})
    assert result.outputs["code"] == 302
    assert result.outputs["headers"]["Location"] == ["/echo"]


def test_charset_from_the_response(runner: TaskRunner, server: str) -> None:
    assert request(runner, f"{server}/latin1").outputs["body"] == "café"


def test_max_content_length(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/big?size=5000", options={"maxContentLength": 4096})
    assert result.state == "FAILED" and "larger than 4096 bytes" in (result.error or "")
    result = request(runner, f"{server}/big?size=5000", options={"maxContentLength": "1KB"})
    assert result.state == "FAILED" and "larger than 1024 bytes" in (result.error or "")


def test_read_timeout(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/slow?s=2", options={"readTimeout": "PT0.2S"})
    assert result.state == "FAILED" and "timed out" in (result.error or "")


def test_connection_refused_is_a_clean_failure(runner: TaskRunner) -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    result = request(runner, f"http://127.0.0.1:{port}/")
    assert result.state == "FAILED"
    assert f"GET http://127.0.0.1:{port}/ failed: ConnectError" in (result.error or "")


@pytest.mark.parametrize("uri, message", [
    ("file:///etc/passwd", "scheme 'file'"),
    ("ftp://example.com/x", "scheme 'ftp'"),
    ("not a url", "http:// or https://"),
])
def test_only_http_urls(runner: TaskRunner, uri: str, message: str) -> None:
    result = request(runner, uri)
    assert result.state == "FAILED" and message in (result.error or "")


def test_invalid_method(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/echo", method="GET /x HTTP/1.1\r\n")
    assert result.state == "FAILED" and "invalid HTTP method" in (result.error or "")


# -- secrets never reach the logs ----------------------------------------------------------

def test_secret_in_url_and_header_is_masked(runner: TaskRunner, server: str) -> None:
    result = runner.run({"id": "req", "type": REQUEST,
                         "uri": server + "/echo?key={{ secret('API') }}",
                         "headers": {"X-Api-Key": "{{ secret('API') }}"}})
    assert result.state == "SUCCESS", result.error
    text = json.dumps(result.logs) + json.dumps(result.outputs)
    assert SECRET not in text
    assert f"GET {server}/echo?key=******" in result.messages


def test_authorization_header_and_userinfo_always_masked(runner: TaskRunner,
                                                         server: str) -> None:
    host = server.removeprefix("http://")
    result = runner.run({"id": "req", "type": REQUEST, "uri": f"http://bob:hunter2@{host}/echo",
                         "headers": {"Authorization": "Bearer plain-token-123"}})
    assert result.state == "SUCCESS", result.error
    logs = json.dumps(result.logs)
    assert "hunter2" not in logs and "bob" not in logs and "plain-token-123" not in logs
    assert f"GET http://******@{host}/echo" in result.messages
    # the echo shows the headers sent: masked in the outputs too
    assert "plain-token-123" not in result.outputs["body"]
    assert "hunter2" not in json.dumps(result.outputs)


def test_basic_and_bearer_auth(runner: TaskRunner, server: str) -> None:
    result = request(runner, f"{server}/echo",
                     options={"auth": {"type": "basic", "username": "u", "password": "pw-9"}})
    doc = json.loads(result.outputs["body"])
    assert doc["headers"]["authorization"] == "Basic ******"  # masked in the outputs
    result = request(runner, f"{server}/echo",
                     options={"auth": {"type": "BEARER", "token": "tok-{{ 40 + 2 }}"}})
    doc = json.loads(result.outputs["body"])
    assert doc["headers"]["authorization"] == "Bearer ******"
    assert "tok-42" not in json.dumps(result.logs)


def test_invalid_options_are_validation_errors(runner: TaskRunner, server: str) -> None:
    with pytest.raises(Exception, match="extra"):
        runner.parse({"id": "r", "type": REQUEST, "uri": server, "options": {"bogus": 1}})
