"""The test kit (``kray.testing``) and what it is built from: ``kray.logs`` and
``kray.runcontext``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kray.storage.internal import InternalStorage
from kray.storage.kv import KVStore
from kray.storage.repository import Repository
from kray.storage.secrets import Masker, SecretStore
from pydantic import Field

from kray.context import RunContext
from kray.engine.state import State
from kray.errors import PluginNotFound, TaskError, TemplateError
from kray.logs import LEVELS, TaskLogger, normalize_level
from kray.registry import PluginRegistry
from kray.runcontext import LocalRunContext, Services, namespace_file_path
from kray.task import FlowableTask, RunnableTask, Task
from kray.templating import TemplateEngine
from kray.testing import TaskResult, TaskRunner

SECRET = "very-secret-value"


class Probe(RunnableTask):
    """A plugin as a third party would write one: it exercises the whole RunContext."""

    type_name: ClassVar[str] = "test.kit.Probe"

    mode: str = "ok"
    text: str = "{{ inputs.text }}"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        text = ctx.render_str(self.text)
        ctx.logger.info(f"probe says {text}")
        ctx.metric("calls", 1, type="counter", task=self.id)
        if self.mode == "warn":
            ctx.state_override = State.WARNING
        if self.mode == "task-error":
            raise TaskError(f"refused: {text}")
        if self.mode == "crash":
            raise ValueError(f"crashed on {text}")
        if self.mode == "not-a-dict":
            return ["no"]  # type: ignore[return-value]
        path = ctx.working_dir / "scratch.txt"
        path.write_text(text)
        uri = ctx.storage.put(ctx.storage_path("probe.txt"), text.encode())
        return {"text": text, "uri": uri, "workingDir": ctx.render_str("{{ workingDir }}"),
                "vars": ctx.render({"flow": "{{ flow.id }}", "task": "{{ task.id }}",
                                    "run": "{{ taskrun.id }}", "ns": "{{ flow.namespace }}"}),
                "extra": ctx.render_str("{{ x }}", {"x": "extra!"})}


class Box(FlowableTask):
    type_name: ClassVar[str] = "test.kit.Box"

    tasks: list[Task] = Field(default_factory=list)

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks]


@pytest.fixture
def runner(tmp_path: Path) -> Any:
    registry = PluginRegistry()
    registry.register(Probe)
    registry.register(Box)
    with TaskRunner(tmp_path, secrets={"KRAY_SECRET_TOKEN": SECRET}, namespace="acme.data",
                    flow_id="etl", registry=registry) as r:
        yield r


def probe(mode: str = "ok", text: str = "{{ inputs.text }}") -> Probe:
    return Probe(id="probe", type="test.kit.Probe", mode=mode, text=text)


# -- TaskRunner ------------------------------------------------------------------------------

def test_runs_an_instance_with_real_components(runner: TaskRunner, tmp_path: Path) -> None:
    result = runner.run(probe(), {"inputs": {"text": "hi"}})
    assert isinstance(result, TaskResult)
    assert (result.state, result.error) == ("SUCCESS", None)
    out = result.outputs
    assert out["text"] == "hi" and out["extra"] == "extra!"
    assert out["vars"] == {"flow": "etl", "task": "probe", "run": result.task_run_id,
                           "ns": "acme.data"}
    assert out["workingDir"] == str(result.working_dir)
    assert result.working_dir and result.working_dir.is_relative_to(tmp_path)
    assert (result.working_dir / "scratch.txt").read_text() == "hi"
    assert out["uri"].startswith("kray:///acme/data/etl/executions/")
    assert runner.storage.read(out["uri"]) == b"hi"
    assert (tmp_path / "kray.duckdb").exists()
    assert result.messages == ["probe says hi"]
    assert result.metrics == [{"name": "calls", "value": 1, "type": "counter",
                               "tags": {"task": "probe"}}]
    assert result.effects == {}


def test_runs_a_dict_through_the_registry(runner: TaskRunner) -> None:
    result = runner.run({"id": "p", "type": "test.kit.Probe", "text": "plain"})
    assert result.outputs["text"] == "plain"


def test_default_registry_knows_the_core_tasks(tmp_path: Path) -> None:
    with TaskRunner(tmp_path) as r:
        result = r.run({"type": "io.kestra.plugin.core.debug.Return", "format": "{{ 6 * 7 }}"})
    assert result.outputs == {"value": "42"}


def test_unknown_and_flowable_types_are_refused(runner: TaskRunner) -> None:
    with pytest.raises(PluginNotFound) as info:
        runner.run({"id": "p", "type": "test.kit.Prob"})
    assert "test.kit.Probe" in str(info.value)
    with pytest.raises(TypeError, match="flowable"):
        runner.run({"id": "b", "type": "test.kit.Box"})


def test_warning_state_from_the_task(runner: TaskRunner) -> None:
    result = runner.run(probe("warn"), {"inputs": {"text": "w"}})
    assert (result.state, result.error) == ("WARNING", None)
    assert result.outputs["text"] == "w"


def test_task_error_fails_with_its_message_only(runner: TaskRunner) -> None:
    result = runner.run(probe("task-error"), {"inputs": {"text": "x"}})
    assert (result.state, result.error) == ("FAILED", "refused: x")
    assert result.outputs == {}
    assert result.messages_at("ERROR") == ["refused: x"]
    assert result.metrics  # what the task recorded before failing is kept


def test_an_unexpected_exception_fails_with_its_type_and_a_logged_traceback(
        runner: TaskRunner) -> None:
    result = runner.run(probe("crash", "{{ secret('TOKEN') }}"))
    assert (result.state, result.error) == ("FAILED", "ValueError: crashed on ******")
    [logged] = result.messages_at("ERROR")
    assert "Traceback" in logged and "crashed on ******" in logged
    assert SECRET not in logged


def test_a_run_that_returns_no_dict_fails(runner: TaskRunner) -> None:
    result = runner.run(probe("not-a-dict"), {"inputs": {"text": "x"}})
    assert result.state == "FAILED"
    assert "not a dict" in (result.error or "")


def test_secrets_are_masked_in_logs_and_outputs(runner: TaskRunner) -> None:
    result = runner.run(probe(text="token {{ secret('TOKEN') }}"))
    assert result.outputs["text"] == "token ******"
    assert result.messages == ["probe says token ******"]
    # what went to storage is the task's business: the real value
    assert runner.storage.read(result.outputs["uri"]) == f"token {SECRET}".encode()


def test_each_run_gets_its_own_ids_and_folder(runner: TaskRunner) -> None:
    a = runner.run(probe(), {"inputs": {"text": "a"}})
    b = runner.run(probe(), {"inputs": {"text": "b"}})
    assert a.task_run_id != b.task_run_id and a.working_dir != b.working_dir
    assert runner.storage.read(a.outputs["uri"]) == b"a"


def test_without_base_dir_the_runner_cleans_up() -> None:
    r = TaskRunner()
    base = r.base_dir
    assert r.run(probe(text="t")).state == "SUCCESS"
    assert base.exists()
    r.close()
    assert not base.exists()


def test_log_level_of_the_runner_and_of_the_task(tmp_path: Path) -> None:
    log = {"id": "l", "type": "io.kestra.plugin.core.log.Log", "level": "DEBUG", "message": "d"}
    with TaskRunner(tmp_path) as r:
        assert r.run(log).logs == []  # INFO by default, like a worker
        assert r.run({**log, "logLevel": "TRACE"}).messages == ["d"]
    with TaskRunner(tmp_path / "verbose", log_level="DEBUG") as r:
        assert r.run(log).messages == ["d"]


# -- TaskLogger ------------------------------------------------------------------------------

def test_logger_masks_filters_and_drains(caplog: pytest.LogCaptureFixture) -> None:
    masker = Masker()
    seen: list[dict[str, Any]] = []
    fixed = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    logger = TaskLogger(masker=masker, min_level="debug", on_line=seen.append,
                        clock=lambda: fixed)
    masker.add(SECRET)  # registered after the logger exists: still masked
    with caplog.at_level(1, logger="kray.task"):
        logger.trace("hidden")
        logger.debug(f"d {SECRET}")
        logger.info("i")
        logger.warning("w1")
        logger.warning("w2")
        logger.error("e")
        logger.log("WARNING", "w3")
    assert [(ln["level"], ln["message"]) for ln in logger.lines] == [
        ("DEBUG", "d ******"), ("INFO", "i"), ("WARN", "w1"), ("WARN", "w2"), ("ERROR", "e"),
        ("WARN", "w3")]
    assert seen == logger.lines
    assert logger.lines[0]["timestamp"] == fixed.isoformat()
    assert SECRET not in caplog.text and "d ******" in caplog.text
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.INFO,
                                                   logging.WARNING, logging.WARNING,
                                                   logging.ERROR, logging.WARNING]
    drained = logger.drain()
    assert len(drained) == 6 and logger.lines == [] and logger.drain() == []
    logger.info("later")
    assert [ln["message"] for ln in logger.drain()] == ["later"]


def test_log_levels() -> None:
    assert LEVELS == ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
    assert normalize_level("warning") == "WARN"
    with pytest.raises(ValueError):
        normalize_level("LOUD")
    with pytest.raises(ValueError):
        TaskLogger(masker=Masker(), min_level="LOUD")


# -- Services and LocalRunContext ------------------------------------------------------------

@pytest.fixture
def parts(tmp_path: Path) -> Any:
    storage = InternalStorage(str(tmp_path / "storage"))
    repo = Repository(tmp_path / "kv.duckdb")
    kv = KVStore(repo)
    masker = Masker()
    secrets = SecretStore(environ={"KRAY_SECRET_TOKEN": SECRET})
    services = Services(secrets=secrets, masker=masker, kv=kv, storage=storage,
                        namespace="acme.data",
                        error_logs=lambda: [{"level": "ERROR", "message": "earlier"}])
    yield storage, kv, masker, secrets, services
    repo.close()


def test_services(parts: Any) -> None:
    storage, kv, masker, _secrets, services = parts
    assert namespace_file_path("acme.data", "/conf/a.txt") == "acme/data/_files/conf/a.txt"
    uri = storage.put("acme/data/_files/conf/a.txt", b"namespace file")
    assert services.file_uri("conf/a.txt") == uri
    assert services.read("conf/a.txt") == services.read(uri) == "namespace file"
    assert services.file_size("/conf/a.txt") == 14
    assert services.file_exists("conf/a.txt") and not services.file_exists("conf/b.txt")
    with pytest.raises(TemplateError):
        services.read("conf/b.txt")
    with pytest.raises(TemplateError):
        services.file_size("kray:///acme/none")
    with pytest.raises(Exception, match="invalid storage path"):
        services.read("../../etc/passwd")

    assert services.secret("TOKEN") == SECRET
    assert masker.mask(f"x {SECRET}") == "x ******"

    kv.set("acme.data", "k", {"a": 1})
    kv.set("other", "k", "elsewhere")
    assert services.kv("k", None, True) == {"a": 1}
    assert services.kv("k", "other", True) == "elsewhere"
    assert services.kv("missing", None, False) is None
    with pytest.raises(TemplateError, match="missing"):
        services.kv("missing", None, True)
    assert services.error_logs() == [{"level": "ERROR", "message": "earlier"}]


def test_template_functions_reach_the_services(parts: Any) -> None:
    storage, kv, masker, secrets, _services = parts
    storage.put("acme/data/_files/hello.txt", b"file body")
    kv.set("acme.data", "color", "blue")
    with LocalRunContext(execution_id="e1", namespace="acme.data", flow_id="etl", task_id="t",
                         task_run_id="r1", attempt=1, variables={"inputs": {"n": 2}},
                         engine=TemplateEngine(), storage=storage, kv=kv, secrets=secrets,
                         masker=masker) as ctx:
        wd = ctx.working_dir
        assert wd.is_dir() and ctx.variables["workingDir"] == str(wd)
        assert isinstance(ctx.logger, TaskLogger)
        assert ctx.render_str("{{ read('hello.txt') }}") == "file body"
        assert ctx.render_str("{{ kv('color') }}") == "blue"
        assert ctx.render_str("{{ fileExists('hello.txt') }}") == "true"
        assert ctx.render_str("{{ secret('TOKEN') | length }}") == str(len(SECRET))
        assert ctx.render(["{{ inputs.n }}", {"k": "{{ y }}"}, 3], {"y": "why"}) == \
            ["2", {"k": "why"}, 3]
        assert ctx.storage_path("f.txt") == "acme/data/etl/executions/e1/tasks/t/r1/f.txt"
        logger = ctx.logger
        assert isinstance(logger, TaskLogger)
        logger.info(f"the secret is {SECRET}")
        assert logger.lines[-1]["message"] == "the secret is ******"
    assert not wd.exists()


def test_a_given_working_dir_is_kept(parts: Any, tmp_path: Path) -> None:
    storage, kv, masker, secrets, _services = parts
    wd = tmp_path / "wd" / "nested"
    ctx = LocalRunContext(execution_id="e", namespace="n", flow_id="f", task_id="t",
                          task_run_id="r", attempt=2, variables={}, engine=TemplateEngine(),
                          storage=storage, kv=kv, secrets=secrets, masker=masker,
                          working_dir=wd)
    assert wd.is_dir() and ctx.attempt == 2
    ctx.close()
    assert wd.is_dir()


def test_read_refuses_binary_files(parts: Any) -> None:
    storage, _kv, _masker, _secrets, services = parts
    uri = storage.put("acme/data/_files/blob.bin", b"\xff\xfe\x00")
    with pytest.raises(TemplateError, match="not UTF-8"):
        services.read(uri)
