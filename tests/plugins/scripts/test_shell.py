"""Shell script tasks, run for real with /bin/sh through ``kray.testing.TaskRunner``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from kray.testing import TaskRunner

from ..conftest import SECRET
from .conftest import read_pids, wait_dead

CMD = "io.kestra.plugin.scripts.shell.Commands"
SCRIPT = "io.kestra.plugin.scripts.shell.Script"


def levels(result) -> list[tuple[str, str]]:
    return [(line["level"], line["message"]) for line in result.logs
            if line["level"] in ("INFO", "WARN", "ERROR")]


def test_stdout_is_info_stderr_is_error(runner: TaskRunner) -> None:
    result = runner.run({"id": "sh", "type": CMD, "commands": [
        "echo hello {{ flow.id }}", "echo oops >&2", "echo", "echo bye", "echo again >&2"]})
    assert result.state == "SUCCESS", result.error
    # Each stream keeps its order; the two pipes are read side by side.
    assert result.messages_at("INFO") == ["hello hello", "bye"]
    assert result.messages_at("ERROR") == ["oops", "again"]
    assert len(levels(result)) == 4
    assert result.outputs == {"exitCode": 0, "vars": {}, "outputFiles": {}}


def test_kray_name_and_a_single_string_command(runner: TaskRunner) -> None:
    result = runner.run({"id": "sh", "type": "kray.scripts.shell.Commands",
                         "commands": "printf 'a\\nb\\n'"})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["a", "b"]


def test_output_protocol_outputs_metrics_and_logs(runner: TaskRunner) -> None:
    lines = [
        '::{"outputs": {"a": 1, "b": "x"}}::',
        '::{"outputs": {"b": "y", "nested": {"k": [1, 2]}}}::',
        ('::{"metrics": [{"name": "rows", "type": "counter", "value": 42, '
         '"tags": {"table": "users"}}, {"name": "took", "type": "timer", "value": 1.5}]}::'),
        ('::{"logs": [{"level": "WARN", "message": "careful"}, {"level": "debug", '
         '"message": "details"}]}::'),
    ]
    commands = [f"echo '{line}'" for line in lines]
    commands.append("""echo '::{"outputs": {"fromStderr": true}}::' >&2""")
    result = runner.run({"id": "proto", "type": CMD, "commands": commands})
    assert result.state == "SUCCESS", result.error
    assert result.outputs["vars"] == {"a": 1, "b": "y", "nested": {"k": [1, 2]},
                                      "fromStderr": True}
    assert result.metrics == [
        {"name": "rows", "value": 42, "type": "counter", "tags": {"table": "users"}},
        {"name": "took", "value": 1.5, "type": "timer", "tags": {}}]
    assert [(l["level"], l["message"]) for l in result.logs] == [
        ("WARN", "careful"), ("DEBUG", "details")]


def test_lines_that_only_look_like_messages_are_logged(runner: TaskRunner) -> None:
    result = runner.run({"id": "proto", "type": CMD, "commands": [
        "echo '::{not json}::'", "echo ' ::{\"outputs\": {}}::'", "echo '::[1]::'",
        "echo '::{\"metrics\": [{\"name\": \"m\", \"value\": \"NaN\"}]}::'"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ['::{not json}::', ' ::{"outputs": {}}::', '::[1]::']
    assert len(result.messages_at("WARN")) == 1 and "malformed metric" in \
        result.messages_at("WARN")[0]
    assert result.outputs["vars"] == {} and result.metrics == []


def test_non_zero_exit_fails_with_code_and_last_stderr_line(runner: TaskRunner) -> None:
    result = runner.run({"id": "bad", "type": CMD, "commands": [
        "echo first >&2", "echo 'no such table' >&2", "exit 3"]})
    assert result.state == "FAILED"
    assert result.error == "command failed with exit code 3: no such table"


def test_fail_fast_stops_at_the_first_failing_command(runner: TaskRunner) -> None:
    result = runner.run({"id": "ff", "type": CMD, "commands": ["false", "echo after"]})
    assert result.state == "FAILED"
    assert result.error == "command failed with exit code 1"
    assert "after" not in result.messages


def test_without_fail_fast_the_last_command_decides(runner: TaskRunner) -> None:
    result = runner.run({"id": "nff", "type": CMD, "failFast": False,
                         "commands": ["false", "echo after"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["after"]


def test_before_commands_run_first_in_the_same_shell(runner: TaskRunner) -> None:
    result = runner.run({"id": "bc", "type": CMD, "beforeCommands": ["GREETING=hi"],
                         "commands": ["echo $GREETING"]})
    assert result.messages_at("INFO") == ["hi"]


def test_env_is_rendered_and_secrets_are_masked(runner: TaskRunner,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAY_SECRET_LEAKY", "worker-secret-value")
    monkeypatch.setenv("SECRET_LEAKY", "d29ya2VyLXNlY3JldA==")
    monkeypatch.setenv("KRAY_TEST_PLAIN", "inherited")
    result = runner.run({"id": "env", "type": CMD,
                         "env": {"TOKEN": "{{ secret('API') }}", "NUM": 7, "FLAG": True,
                                 "NS": "{{ flow.namespace }}"},
                         "commands": ['echo "token=$TOKEN num=$NUM flag=$FLAG ns=$NS"',
                                      'echo "plain=$KRAY_TEST_PLAIN"',
                                      ('echo "leak=${KRAY_SECRET_LEAKY:-none}'
                                       '/${SECRET_LEAKY:-none}"'),
                                      "echo '::{\"outputs\": {\"t\": \"'$TOKEN'\"}}::'"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == [
        "token=****** num=7 flag=true ns=company.team", "plain=inherited", "leak=none/none"]
    assert SECRET not in str(result.outputs)
    assert result.outputs["vars"] == {"t": "******"}


def test_custom_interpreter(runner: TaskRunner) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    result = runner.run({"id": "bash", "type": CMD, "interpreter": [bash, "-c"],
                         "commands": ["arr=(x y z)", "echo ${arr[2]} $BASH_VERSION"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO")[0].startswith("z ")


def test_working_dir_and_output_dir_templates(runner: TaskRunner) -> None:
    result = runner.run({"id": "dirs", "type": CMD, "commands": [
        "echo {{ workingDir }}", "pwd", "echo {{ outputDir }}",
        "echo report > {{ outputDir }}/report.txt",
        "mkdir -p {{ outputDir }}/sub && echo deep > {{ outputDir }}/sub/d.txt"]})
    assert result.state == "SUCCESS", result.error
    working, pwd, output_dir = result.messages_at("INFO")
    assert working == pwd == str(result.working_dir)
    assert Path(output_dir).parent.parent == result.working_dir
    files = result.outputs["outputFiles"]
    assert sorted(files) == ["report.txt", "sub/d.txt"]
    assert runner.storage.read(files["report.txt"]) == b"report\n"
    assert runner.storage.read(files["sub/d.txt"]) == b"deep\n"
    assert f"/tasks/dirs/{result.task_run_id}/" in files["report.txt"]


def test_output_files_globs(runner: TaskRunner) -> None:
    result = runner.run({"id": "globs", "type": CMD,
                         "outputFiles": ["*.csv", "logs/**", "{{ 'exact.txt' }}"],
                         "commands": ["echo a > a.csv", "mkdir -p x logs/deep",
                                      "echo b > x/b.csv", "echo c > logs/deep/c.log",
                                      "echo e > exact.txt", "echo n > not.txt"]})
    assert result.state == "SUCCESS", result.error
    files = result.outputs["outputFiles"]
    assert sorted(files) == ["a.csv", "exact.txt", "logs/deep/c.log"]
    assert runner.storage.read(files["logs/deep/c.log"]) == b"c\n"

    result = runner.run({"id": "deep", "type": CMD, "outputFiles": ["**/*.csv"],
                         "commands": ["mkdir -p x/y", "echo > a.csv", "echo > x/y/b.csv"]})
    assert sorted(result.outputs["outputFiles"]) == ["a.csv", "x/y/b.csv"]


def test_input_files_content_uri_and_namespace_file(runner: TaskRunner) -> None:
    uri = runner.storage.put("some/where/data.csv", b"id,name\n1,kray\n")
    runner.storage.put("company/team/_files/conf/app.ini", b"[app]\nx=1\n")
    result = runner.run({"id": "inputs", "type": CMD, "inputFiles": {
        "hello.txt": "Hello {{ flow.id }}", "nested/data.csv": uri,
        "app.ini": "nsfile:///conf/app.ini"},
        "commands": ["cat hello.txt; echo", "cat nested/data.csv", "cat app.ini"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["Hello hello", "id,name", "1,kray", "[app]", "x=1"]


def test_input_files_as_a_json_string(runner: TaskRunner) -> None:
    result = runner.run({"id": "json", "type": CMD,
                         "inputFiles": '{{ {"a.txt": "from json"} | json }}',
                         "commands": ["cat a.txt"]},
                        )
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["from json"]


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/evil", "a/../../b"])
def test_input_files_must_stay_in_the_working_dir(runner: TaskRunner, name: str) -> None:
    result = runner.run({"id": "evil", "type": CMD, "inputFiles": {name: "x"},
                         "commands": ["true"]})
    assert result.state == "FAILED"
    assert "relative path inside the working folder" in (result.error or "")


def test_missing_input_uri_fails(runner: TaskRunner) -> None:
    result = runner.run({"id": "missing", "type": CMD,
                         "inputFiles": {"a.txt": "kray:///nope/a.txt"}, "commands": ["true"]})
    assert result.state == "FAILED"
    assert result.error == "file not found: kray:///nope/a.txt"


def test_namespace_files_include_and_exclude(runner: TaskRunner) -> None:
    for path in ("main.py", "lib/util.py", "lib/test_util.py", "data/big.csv"):
        runner.storage.put(f"company/team/_files/{path}", path.encode())
    runner.storage.put("other/_files/elsewhere.py", b"no")
    result = runner.run({"id": "ns", "type": CMD,
                         "namespaceFiles": {"enabled": True, "include": ["**/*.py"],
                                            "exclude": ["**/test_*"]},
                         "commands": ["find . -type f -not -path './_outputs/*' | sort"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["./lib/util.py", "./main.py"]
    assert (result.working_dir / "lib" / "util.py").read_text() == "lib/util.py"

    result = runner.run({"id": "off", "type": CMD, "namespaceFiles": {"enabled": False},
                         "commands": ["ls main.py"]})
    assert result.state == "FAILED"


def test_input_files_are_written_after_namespace_files(runner: TaskRunner) -> None:
    runner.storage.put("company/team/_files/a.txt", b"ns")
    result = runner.run({"id": "clash", "type": CMD, "inputFiles": {"a.txt": "input"},
                         "namespaceFiles": {"ifExists": "IGNORE"}, "commands": ["cat a.txt"]})
    assert result.messages_at("INFO") == ["input"]  # inputFiles are written last


def test_warning_on_stderr_is_off_by_default_and_can_be_enabled(runner: TaskRunner) -> None:
    task = {"id": "warn", "type": CMD, "commands": ["echo note >&2"]}
    assert runner.run(task).state == "SUCCESS"
    assert runner.run({**task, "warningOnStdErr": True}).state == "WARNING"
    assert runner.run({**task, "commands": ["echo fine"], "warningOnStdErr": True}
                      ).state == "SUCCESS"


def test_docker_runner_fails_clearly(runner: TaskRunner) -> None:
    result = runner.run({"id": "docker", "type": CMD, "containerImage": "ubuntu",
                         "taskRunner": {"type": "io.kestra.plugin.scripts.runner.docker.Docker",
                                        "pullPolicy": "IF_NOT_PRESENT"},
                         "commands": ["echo never"]})
    assert result.state == "FAILED"
    assert "taskRunner Docker" in (result.error or "")
    assert "io.kestra.plugin.core.runner.Process" in (result.error or "")
    assert "never" not in result.messages


def test_process_runner_and_ignored_container_image(runner: TaskRunner) -> None:
    result = runner.run({"id": "proc", "type": CMD, "containerImage": "ubuntu:22.04",
                         "taskRunner": {"type": "io.kestra.plugin.core.runner.Process"},
                         "commands": ["echo on the worker"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["on the worker"]


def test_unknown_runner_and_properties_are_rejected(runner: TaskRunner) -> None:
    with pytest.raises(ValidationError, match="unsupported taskRunner"):
        runner.parse({"id": "k", "type": CMD, "commands": ["true"],
                      "taskRunner": {"type": "io.kestra.plugin.ee.kubernetes.runner.Kubernetes"}})
    with pytest.raises(ValidationError):
        runner.parse({"id": "typo", "type": CMD, "comands": ["true"]})
    with pytest.raises(ValidationError):
        runner.parse({"id": "empty", "type": CMD, "commands": []})


def test_a_very_long_command_list_goes_through_a_file(runner: TaskRunner) -> None:
    commands = [f"echo line-{i} > /dev/null # {'x' * 40}" for i in range(3000)]
    result = runner.run({"id": "long", "type": CMD, "commands": [*commands, "echo done"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["done"]


def test_script_task_is_sourced_by_the_shell(runner: TaskRunner) -> None:
    result = runner.run({"id": "script", "type": SCRIPT, "beforeCommands": ["X=before"],
                         "script": 'echo "$X {{ flow.id }}"\nfalse\necho unreachable\n'})
    assert result.state == "FAILED"
    assert result.messages_at("INFO") == ["before hello"]
    result = runner.run({"id": "script", "type": "kray.scripts.shell.Script",
                         "script": "echo ok\nexit 0\necho unreachable"})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["ok"]


def test_old_bash_task(runner: TaskRunner) -> None:
    result = runner.run({"id": "bash", "type": "io.kestra.core.tasks.scripts.Bash",
                         "interpreter": "/bin/sh", "interpreterArgs": ["-c"],
                         "exitOnFailed": False, "commands": ["false", "echo still"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == ["still"]


def test_node_script(runner: TaskRunner) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    result = runner.run({"id": "js", "type": "io.kestra.plugin.scripts.node.Script",
                         "script": "console.log('::' + JSON.stringify({outputs: "
                                   "{sum: 1 + 2}}) + '::'); console.log('{{ flow.id }}');"})
    assert result.state == "SUCCESS", result.error
    assert result.outputs["vars"] == {"sum": 3}
    assert result.messages_at("INFO") == ["hello"]


def test_background_processes_are_killed_when_the_script_ends(runner: TaskRunner,
                                                            tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    result = runner.run({"id": "bg", "type": CMD, "commands": [
        f"sleep 60 & echo $! >> {pid_file}",  # keeps the output pipes open
        f"sh -c 'echo $$ >> {pid_file}; exec sleep 60' > /dev/null 2>&1 &",  # does not
        f"while [ $(wc -l < {pid_file}) -lt 2 ]; do sleep 0.01; done",
        "echo done"]})
    assert result.state == "SUCCESS", result.error
    pids = read_pids(pid_file)
    assert len(pids) == 2
    assert wait_dead(pids, timeout=5) == []
