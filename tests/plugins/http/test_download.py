"""``http.Download`` against a real server on 127.0.0.1."""

from __future__ import annotations

from kray.testing import TaskRunner

DOWNLOAD = "io.kestra.plugin.core.http.Download"


def download(runner: TaskRunner, uri: str, **props: object):
    return runner.run({"id": "dl", "type": DOWNLOAD, "uri": uri, **props})


def test_download_streams_to_storage(runner: TaskRunner, server: str) -> None:
    result = download(runner, f"{server}/files/report.csv")
    assert result.state == "SUCCESS", result.error
    out = result.outputs
    assert out["code"] == 200 and out["length"] == 8
    assert out["uri"].startswith("kray:///company/team/hello/executions/")
    assert out["uri"].endswith(f"/tasks/dl/{result.task_run_id}/report.csv")
    assert runner.storage.read(out["uri"]) == b"a,b\n1,2\n"
    assert out["headers"]["Content-Type"] == ["text/csv"]


def test_large_download(runner: TaskRunner, server: str) -> None:
    result = download(runner, f"{server}/big?size=3000000")
    assert result.state == "SUCCESS", result.error
    assert result.outputs["length"] == 3_000_000
    assert runner.storage.size(result.outputs["uri"]) == 3_000_000


def test_file_name_from_content_disposition_is_sanitised(runner: TaskRunner,
                                                          server: str) -> None:
    result = download(runner, f"{server}/attachment")
    assert result.state == "SUCCESS", result.error
    assert result.outputs["uri"].endswith("/my_data.bin")
    assert runner.storage.read(result.outputs["uri"]) == b"\x00\x01binary"


def test_empty_response(runner: TaskRunner, server: str) -> None:
    result = download(runner, f"{server}/empty")
    assert result.state == "FAILED" and "empty body" in (result.error or "")
    result = download(runner, f"{server}/empty", failOnEmptyResponse=False)
    assert result.state == "SUCCESS" and result.outputs["length"] == 0


def test_error_status(runner: TaskRunner, server: str) -> None:
    result = download(runner, f"{server}/status/503")
    assert result.state == "FAILED" and "HTTP 503" in (result.error or "")
    result = download(runner, f"{server}/status/503", options={"allowFailed": True})
    assert result.state == "SUCCESS" and result.outputs["code"] == 503
    assert runner.storage.read(result.outputs["uri"]) == b"status 503 body"


def test_max_content_length_leaves_no_file(runner: TaskRunner, server: str) -> None:
    result = download(runner, f"{server}/big?size=200000", options={"maxContentLength": "64KB"})
    assert result.state == "FAILED" and "maxContentLength" in (result.error or "")
    assert not any("big" in u for u in runner.storage.list(""))
