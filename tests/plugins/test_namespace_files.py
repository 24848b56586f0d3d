"""``namespace.UploadFiles``, ``DownloadFiles`` and ``DeleteFiles`` on real storage; the
files they write are what ``read()`` sees in templates."""

from __future__ import annotations

import pytest
from kray.plugins.core.namespace import glob_regex

from kray.runcontext import namespace_file_path
from kray.testing import TaskRunner

UPLOAD = "io.kestra.plugin.core.namespace.UploadFiles"
DOWNLOAD = "io.kestra.plugin.core.namespace.DownloadFiles"
DELETE = "io.kestra.plugin.core.namespace.DeleteFiles"


def ns_file(runner: TaskRunner, path: str, data: bytes, namespace: str = "company.team") -> str:
    return runner.storage.put(namespace_file_path(namespace, path), data)


def ns_read(runner: TaskRunner, path: str, namespace: str = "company.team") -> bytes:
    return runner.storage.read(namespace_file_path(namespace, path))


def test_upload_uris_to_a_destination(runner: TaskRunner) -> None:
    a = runner.storage.put("inputs/a.sql", b"select 1")
    b = runner.storage.put("inputs/b.sql", b"select 2")
    result = runner.run({"id": "up", "type": UPLOAD, "files": [a, "{{ inputs.b }}"],
                         "destination": "/sql"}, {"inputs": {"b": b}})
    assert result.state == "SUCCESS", result.error
    assert result.outputs["files"] == {
        "sql/a.sql": "kray:///company/team/_files/sql/a.sql",
        "sql/b.sql": "kray:///company/team/_files/sql/b.sql"}
    assert ns_read(runner, "sql/b.sql") == b"select 2"
    # what a template's read() sees
    shown = runner.run({"id": "r", "type": "io.kestra.plugin.core.debug.Return",
                        "format": "{{ read('sql/a.sql') }}"})
    assert shown.outputs["value"] == "select 1"


def test_upload_map_to_another_namespace(runner: TaskRunner) -> None:
    uri = runner.storage.put("inputs/x.txt", b"x")
    result = runner.run({"id": "up", "type": UPLOAD, "namespace": "other.ns",
                         "filesMap": {"deep/dir/y.txt": uri}})
    assert result.state == "SUCCESS", result.error
    assert ns_read(runner, "deep/dir/y.txt", "other.ns") == b"x"


def test_upload_globs_from_the_working_directory(runner: TaskRunner, tmp_path) -> None:
    from kray.task import RunnableTask

    class Make(RunnableTask):  # writes files into its working directory, then uploads them
        type_name = "test.Make"
        type: str = "test.Make"

        def run(self, ctx):
            (ctx.working_dir / "out" / "sub").mkdir(parents=True)
            (ctx.working_dir / "out" / "r1.csv").write_text("1")
            (ctx.working_dir / "out" / "sub" / "r2.csv").write_text("2")
            (ctx.working_dir / "out" / "skip.txt").write_text("no")
            task = runner.parse({"id": "up", "type": UPLOAD, "files": ["out/**.csv"],
                                 "destination": "reports"})
            return task.run(ctx)

    result = runner.run(Make(id="make"))
    assert result.state == "SUCCESS", result.error
    assert sorted(result.outputs["files"]) == ["reports/out/r1.csv", "reports/out/sub/r2.csv"]


@pytest.mark.parametrize("conflict, state, content", [
    ("OVERWRITE", "SUCCESS", b"new"), ("SKIP", "SUCCESS", b"old"), ("ERROR", "FAILED", b"old")])
def test_upload_conflict(runner: TaskRunner, conflict: str, state: str, content: bytes) -> None:
    ns_file(runner, "f.txt", b"old")
    uri = runner.storage.put("inputs/f.txt", b"new")
    result = runner.run({"id": "up", "type": UPLOAD, "files": [uri], "conflict": conflict})
    assert result.state == state, result.error
    assert ns_read(runner, "f.txt") == content
    if state == "FAILED":
        assert "already exists" in (result.error or "")


@pytest.mark.parametrize("props, message", [
    ({"files": ["kray:///inputs/none.txt"]}, "file not found"),
    ({"files": {"../../etc/x": "kray:///inputs/a.txt"}}, "'..' segments"),
    ({"files": ["/etc/passwd"]}, "no file of the working directory matches"),
    ({"files": {"x": "/etc/passwd"}}, "neither a kray:// URI nor a file"),
    ({"files": {"x": "../../../etc/passwd"}}, "neither a kray:// URI nor a file"),
    ({"files": ["a"], "namespace": "Bad..NS"}, "invalid namespace"),
    ({}, "no file to upload"),
])
def test_upload_refuses(runner: TaskRunner, props: dict, message: str) -> None:
    runner.storage.put("inputs/a.txt", b"a")
    result = runner.run({"id": "up", "type": UPLOAD, **props})
    assert result.state == "FAILED"
    assert message in (result.error or ""), result.error


def test_download_globs(runner: TaskRunner) -> None:
    ns_file(runner, "sql/a.sql", b"A")
    ns_file(runner, "sql/deep/b.sql", b"B")
    ns_file(runner, "readme.md", b"R")
    result = runner.run({"id": "dl", "type": DOWNLOAD, "files": ["**.sql"],
                         "destination": "in"})
    assert result.state == "SUCCESS", result.error
    files = result.outputs["files"]
    assert sorted(files) == ["sql/a.sql", "sql/deep/b.sql"]
    assert f"/tasks/dl/{result.task_run_id}/sql/deep/b.sql" in files["sql/deep/b.sql"]
    assert runner.storage.read(files["sql/a.sql"]) == b"A"
    assert (result.working_dir / "in" / "sql" / "deep" / "b.sql").read_bytes() == b"B"
    # a snapshot: changing the namespace file later leaves the copy alone
    ns_file(runner, "sql/a.sql", b"changed")
    assert runner.storage.read(files["sql/a.sql"]) == b"A"


def test_download_refuses_escaping_destination(runner: TaskRunner) -> None:
    ns_file(runner, "a.txt", b"A")
    result = runner.run({"id": "dl", "type": DOWNLOAD, "files": "a.txt",
                         "destination": "../../x"})
    assert result.state == "FAILED" and "inside the working directory" in (result.error or "")


def test_delete(runner: TaskRunner) -> None:
    for path in ("a/1.txt", "a/2.txt", "b/1.txt"):
        ns_file(runner, path, b"x")
    result = runner.run({"id": "rm", "type": DELETE, "files": ["/a/*"]})
    assert result.state == "SUCCESS", result.error
    assert result.outputs["files"] == ["a/1.txt", "a/2.txt"]
    remaining = runner.storage.list(namespace_file_path("company.team", "").rstrip("/"))
    assert [u.rsplit("_files/", 1)[1] for u in remaining] == ["b/1.txt"]
    result = runner.run({"id": "rm", "type": DELETE, "files": ["zzz/*"], "errorOnMissing": True})
    assert result.state == "FAILED" and "no namespace file matches" in (result.error or "")
    result = runner.run({"id": "rm", "type": DELETE, "files": ["zzz/*"]})
    assert result.state == "SUCCESS" and result.outputs["files"] == []


@pytest.mark.parametrize("pattern, yes, no", [
    ("*.sql", ["a.sql"], ["d/a.sql"]),
    ("**.sql", ["a.sql", "d/e/a.sql"], ["a.sq"]),
    ("sql/**", ["sql/a", "sql/b/c"], ["sqlx/a"]),
    ("**/x.txt", ["x.txt", "a/b/x.txt"], ["ax.txt"]),
    ("f?.[ch]", ["f1.c", "f2.h"], ["f1.o", "f12.c"]),
    ("f[!0-9].c", ["fa.c"], ["f1.c"]),
])
def test_glob(pattern: str, yes: list[str], no: list[str]) -> None:
    regex = glob_regex(pattern)
    assert all(regex.match(p) for p in yes)
    assert not any(regex.match(p) for p in no)
