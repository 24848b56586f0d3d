"""acme.text.WordCount, tested with kray's own test kit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from acme_text import register

from kray.registry import PluginRegistry
from kray.testing import TaskRunner, run_flow


@pytest.fixture
def registry() -> PluginRegistry:
    reg = PluginRegistry()
    register(reg)
    return reg


@pytest.fixture
def runner(tmp_path: Path, registry: PluginRegistry):
    with TaskRunner(tmp_path, registry=registry, namespace="acme") as r:
        yield r


def test_counts_rendered_text(runner: TaskRunner) -> None:
    result = runner.run({"id": "count", "type": "acme.text.WordCount",
                         "text": "Hello {{ inputs.who }}!\nIt's a well-known fact."},
                        {"inputs": {"who": "world"}})
    assert result.state == "SUCCESS", result.error
    assert result.outputs == {"words": 6, "lines": 2, "characters": 36}
    assert result.messages == ["6 words, 2 lines"]
    assert result.metrics[0]["name"] == "words"


def test_file_top_words_and_kv(runner: TaskRunner) -> None:
    uri = runner.storage.put("inputs/t.txt", b"b a b c b a")
    result = runner.run({"id": "count", "type": "com.acme.text.WordCount", "from": uri,
                         "top": 2, "kvKey": "last_count"})
    assert result.state == "SUCCESS", result.error
    assert json.loads(runner.storage.read(result.outputs["uri"])) == [
        {"word": "b", "count": 3}, {"word": "a", "count": 2}]
    assert runner.kv.get("acme", "last_count") == 6


def test_failures(runner: TaskRunner) -> None:
    result = runner.run({"id": "count", "type": "acme.text.WordCount", "from": "/etc/hosts"})
    assert result.state == "FAILED" and "kray:// URI" in (result.error or "")
    with pytest.raises(Exception, match="exactly one of"):
        runner.parse({"id": "count", "type": "acme.text.WordCount"})


def test_in_a_flow(registry: PluginRegistry, tmp_path: Path) -> None:
    execution = run_flow("""
id: words
namespace: acme
inputs:
  - id: text
    type: STRING
tasks:
  - id: count
    type: acme.text.WordCount
    text: "{{ inputs.text }}"
outputs:
  - id: words
    type: INT
    value: "{{ outputs.count.words }}"
""", {"text": "one two three"}, registry=registry, base_dir=tmp_path)
    assert execution.state.current == "SUCCESS", execution.error
    assert execution.outputs == {"words": 3}
