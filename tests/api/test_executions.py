"""Executions over HTTP: inputs (multipart, JSON, files), wait, labels, search, kill,
restart, replay, resume, change status, files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.api.conftest import deploy, wait_state

pytestmark = pytest.mark.ray


def inputs_flow(ns: str) -> str:
    return f"""id: inputs
namespace: {ns}
inputs:
  - id: name
    type: STRING
  - id: count
    type: INT
    defaults: 1
    min: 1
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.name }}}}x{{{{ inputs.count }}}}"
outputs:
  - id: result
    type: STRING
    value: "{{{{ outputs.echo.value }}}}"
"""


def test_create_with_form_inputs_and_wait(http: httpx.Client, ns: str) -> None:
    deploy(http, inputs_flow(ns))
    r = http.post(f"/api/v1/executions/{ns}/inputs", params={"wait": "true"},
                  data={"name": "kray", "count": "3"})
    assert r.status_code == 200, r.text
    ex = r.json()
    assert ex["state"] == "SUCCESS" and ex["outputs"] == {"result": "krayx3"}
    assert ex["inputs"] == {"name": "kray", "count": 3}
    (run,) = ex["taskRuns"]
    assert "outputs" not in run  # wait=true: only the flow's declared outputs
    assert "timers" not in ex and "metadata" not in ex and "meta" not in run
    full = http.get(f"/api/v1/executions/{ex['id']}").json()
    assert full["taskRuns"][0]["outputs"] == {"value": "krayx3"}

    as_json = http.post(f"/api/v1/executions/{ns}/inputs", json={"name": "j"},
                        params={"wait": True}).json()
    assert as_json["outputs"] == {"result": "jx1"}
    multipart = http.post(f"/api/v1/executions/{ns}/inputs", params={"wait": True},
                          files={"name": (None, "m")}).json()
    assert multipart["outputs"] == {"result": "mx1"}
    started = http.post(f"/api/v1/executions/{ns}/inputs", data={"name": "n"}).json()
    assert started["state"] in ("CREATED", "RUNNING", "SUCCESS")
    assert wait_state(http, started["id"], {"SUCCESS"})["outputs"] == {"result": "nx1"}


def test_bad_inputs_are_422_naming_the_input(http: httpx.Client, ns: str) -> None:
    deploy(http, inputs_flow(ns))
    r = http.post(f"/api/v1/executions/{ns}/inputs", data={"count": "0"})
    assert r.status_code == 422
    paths = sorted(i["path"] for i in r.json()["issues"])
    assert paths == ["inputs.count", "inputs.name"]
    bad = http.post(f"/api/v1/executions/{ns}/inputs", data={"name": "x", "count": "many"})
    assert bad.status_code == 422 and bad.json()["issues"][0]["path"] == "inputs.count"
    assert http.post(f"/api/v1/executions/{ns}/nope").status_code == 404
    assert http.post(f"/api/v1/executions/{ns}/inputs", content=b"[1]",
                     headers={"Content-Type": "application/json"}).status_code == 422
    assert http.post(f"/api/v1/executions/{ns}/inputs", content=b"x",
                     headers={"Content-Type": "text/csv"}).status_code == 422
    labels = http.post(f"/api/v1/executions/{ns}/inputs", data={"name": "x"},
                       params={"labels": "nocolon"})
    assert labels.status_code == 422 and labels.json()["issues"][0]["path"] == "labels"


def test_file_input_upload_and_download(http: httpx.Client, ns: str) -> None:
    deploy(http, f"""id: files
namespace: {ns}
inputs:
  - id: data
    type: FILE
tasks:
  - id: size
    type: io.kestra.plugin.core.storage.Size
    uri: "{{{{ inputs.data }}}}"
  - id: copy
    type: io.kestra.plugin.core.storage.Write
    content: "{{{{ read(inputs.data) | upper }}}}"
outputs:
  - id: size
    type: INT
    value: "{{{{ outputs.size.size }}}}"
  - id: copy
    type: STRING
    value: "{{{{ outputs.copy.uri }}}}"
""")
    r = http.post(f"/api/v1/executions/{ns}/files", params={"wait": True},
                  files={"data": ("../../hello.txt", b"hello world", "text/plain")})
    assert r.status_code == 200, r.text
    ex = r.json()
    assert ex["state"] == "SUCCESS" and ex["outputs"]["size"] == 11
    uploaded = ex["inputs"]["data"]
    assert uploaded.startswith(f"kray:///{ns}/files/executions/{ex['id']}/inputs/data/")
    assert uploaded.endswith("/hello.txt")  # the name is kept, never its folders
    got = http.get(f"/api/v1/executions/{ex['id']}/file", params={"path": uploaded})
    assert got.status_code == 200 and got.content == b"hello world"
    copy = http.get(f"/api/v1/executions/{ex['id']}/file", params={"path": ex["outputs"]["copy"]})
    assert copy.content == b"HELLO WORLD"

    other = http.post(f"/api/v1/executions/{ns}/files", params={"wait": True},
                      files={"data": ("b.txt", b"x")}).json()
    outside = http.get(f"/api/v1/executions/{other['id']}/file", params={"path": uploaded})
    assert outside.status_code == 422 and outside.json()["issues"][0]["path"] == "path"
    folder = uploaded.rsplit("/inputs/", 1)[0]
    for path in (f"{folder}/../../x", "/etc/passwd", "kray:////etc/passwd", f"{folder}/%2e%2e/x"):
        r = http.get(f"/api/v1/executions/{ex['id']}/file", params={"path": path})
        assert r.status_code == 422, path
    assert http.get(f"/api/v1/executions/{ex['id']}/file",
                    params={"path": f"{folder}/nothing.txt"}).status_code == 404
    # A FILE input given as text must be a kray:// URI, never a path on the server.
    local = http.post(f"/api/v1/executions/{ns}/files", data={"data": "/etc/hostname"})
    assert local.status_code == 422 and local.json()["issues"][0]["path"] == "inputs.data"
    stray = http.post(f"/api/v1/executions/{ns}/files",
                      files={"data": ("a", b"a"), "other": ("b", b"b")})
    assert stray.status_code == 422 and stray.json()["issues"][0]["path"] == "inputs.other"


def test_labels_and_search(http: httpx.Client, ns: str) -> None:
    deploy(http, inputs_flow(ns))
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = []
    for i, team in enumerate(("a", "a", "b")):
        r = http.post(f"/api/v1/executions/{ns}/inputs", data={"name": f"n{i}"},
                      params={"wait": True, "labels": [f"team:{team}", "env:test"]})
        assert r.json()["labels"] == {"team": team, "env": "test"}
        ids.append(r.json()["id"])
    search = "/api/v1/executions/search"
    page = http.get(search, params={"namespace": ns, "size": 2, "sort": "startDate:asc"}).json()
    assert page["total"] == 3 and [e["id"] for e in page["results"]] == ids[:2]
    second = http.get(search, params={"namespace": ns, "size": 2, "page": 2,
                                      "sort": "startDate:asc"}).json()
    assert [e["id"] for e in second["results"]] == ids[2:]
    newest = http.get(search, params={"namespace": ns, "sort": "startDate:desc"}).json()
    assert [e["id"] for e in newest["results"]] == ids[::-1]
    by_label = http.get(search, params={"namespace": ns, "labels": "team:a"}).json()
    assert sorted(e["id"] for e in by_label["results"]) == sorted(ids[:2])
    by_state = http.get(search, params={"flowId": "inputs", "namespace": ns,
                                        "state": ["SUCCESS", "FAILED"]}).json()
    assert by_state["total"] == 3
    assert http.get(search, params={"namespace": ns, "state": "FAILED"}).json()["total"] == 0
    window = {"namespace": ns, "startDate": before.isoformat(),
              "endDate": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}
    assert http.get(search, params=window).json()["total"] == 3
    late = {"namespace": ns, "startDate": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    assert http.get(search, params=late).json()["total"] == 0
    bad = http.get(search, params={"sort": "nope:desc"})
    assert bad.status_code == 422 and bad.json()["issues"][0]["path"] == "sort"
    assert http.get(search, params={"state": "NOPE"}).status_code == 422
    assert http.get("/api/v1/executions/doesnotexist").status_code == 404
    # taskRuns=false: a list page's view, the task runs counted by state, not sent.
    full = http.get(search, params={"namespace": ns, "sort": "startDate:asc"}).json()
    light = http.get(search, params={"namespace": ns, "sort": "startDate:asc",
                                     "taskRuns": False}).json()
    assert [e["id"] for e in light["results"]] == ids and light["total"] == 3
    for heavy, summary in zip(full["results"], light["results"], strict=True):
        assert heavy["taskRuns"] and summary["taskRuns"] == []
        assert summary["taskRunCount"] == len(heavy["taskRuns"])
        assert summary["taskRunStates"] == {"SUCCESS": len(heavy["taskRuns"])}


def sleeper(ns: str) -> str:
    return f"""id: sleeper
namespace: {ns}
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


def test_kill_and_change_status(http: httpx.Client, ns: str) -> None:
    deploy(http, sleeper(ns))
    ex = http.post(f"/api/v1/executions/{ns}/sleeper").json()
    wait_state(http, ex["id"], {"RUNNING"})
    killed = http.delete(f"/api/v1/executions/{ex['id']}/kill")
    assert killed.status_code == 202
    assert wait_state(http, ex["id"], {"KILLED"})["taskRuns"][0]["state"] == "KILLED"
    assert http.delete(f"/api/v1/executions/{ex['id']}/kill").status_code == 409
    assert http.delete("/api/v1/executions/nope/kill").status_code == 404

    changed = http.post(f"/api/v1/executions/{ex['id']}/change-status",
                        params={"status": "SUCCESS"})
    assert changed.status_code == 200 and changed.json()["state"] == "SUCCESS"
    assert http.get(f"/api/v1/executions/{ex['id']}").json()["state"] == "SUCCESS"
    found = http.get("/api/v1/executions/search", params={"namespace": ns,
                                                          "state": "SUCCESS"}).json()
    assert [e["id"] for e in found["results"]] == [ex["id"]]
    same = http.post(f"/api/v1/executions/{ex['id']}/change-status", params={"status": "SUCCESS"})
    assert same.status_code == 409  # the transition table has no SUCCESS -> SUCCESS
    running = http.post(f"/api/v1/executions/{ex['id']}/change-status",
                        params={"status": "RUNNING"})
    assert running.status_code == 422 and running.json()["issues"][0]["path"] == "status"


def flaky(ns: str) -> str:
    return f"""id: flaky
namespace: {ns}
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: second
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ kv('go') }}}}"
  - id: third
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.first.value }}}}-{{{{ outputs.second.value }}}}"
outputs:
  - id: joined
    type: STRING
    value: "{{{{ outputs.third.value }}}}"
"""


def test_restart_and_replay(http: httpx.Client, ns: str) -> None:
    deploy(http, flaky(ns))
    failed = http.post(f"/api/v1/executions/{ns}/flaky", params={"wait": True}).json()
    assert failed["state"] == "FAILED"
    assert http.post(f"/api/v1/executions/{failed['id']}/replay",
                     params={"taskRunId": "nope"}).status_code == 422
    assert http.put(f"/api/v1/namespaces/{ns}/kv/go", json="two").status_code == 200

    full = http.get(f"/api/v1/executions/{failed['id']}").json()
    first, second = full["taskRuns"]
    replayed = http.post(f"/api/v1/executions/{failed['id']}/replay",
                         params={"taskRunId": second["id"]})
    assert replayed.status_code == 200, replayed.text
    replay = wait_state(http, replayed.json()["id"], {"SUCCESS", "FAILED"})
    assert replay["state"] == "SUCCESS" and replay["outputs"] == {"joined": "one-two"}
    assert replay["parentId"] == failed["id"] and replay["id"] != failed["id"]
    kept = replay["taskRuns"][0]
    assert kept["taskId"] == "first" and kept["startDate"] == first["startDate"]  # not re-run
    assert kept["id"] != first["id"]

    whole = http.post(f"/api/v1/executions/{failed['id']}/replay").json()
    whole = wait_state(http, whole["id"], {"SUCCESS", "FAILED"})
    assert whole["state"] == "SUCCESS" and whole["taskRuns"][0]["startDate"] > first["startDate"]

    restarted = http.post(f"/api/v1/executions/{failed['id']}/restart")
    assert restarted.status_code == 200, restarted.text
    done = wait_state(http, failed["id"], {"SUCCESS", "FAILED"})
    assert done["state"] == "SUCCESS" and done["outputs"] == {"joined": "one-two"}
    assert len(done["taskRuns"][1]["attempts"]) == 2  # same id, a new attempt
    again = http.post(f"/api/v1/executions/{failed['id']}/restart")
    assert again.status_code == 409  # SUCCESS cannot be restarted


def test_replay_inside_a_foreach(http: httpx.Client, ns: str) -> None:
    deploy(http, f"""id: loop
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: step
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ taskrun.value }}}}"
      - id: gate
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ kv('gate-' ~ taskrun.value) }}}}"
""")
    http.put(f"/api/v1/namespaces/{ns}/kv/gate-a", json="ok")
    failed = http.post(f"/api/v1/executions/{ns}/loop", params={"wait": True}).json()
    assert failed["state"] == "FAILED"
    runs = http.get(f"/api/v1/executions/{failed['id']}").json()["taskRuns"]
    gate_b = next(r for r in runs if r["taskId"] == "gate" and r["value"] == "b")
    http.put(f"/api/v1/namespaces/{ns}/kv/gate-b", json="ok")
    replay = http.post(f"/api/v1/executions/{failed['id']}/replay",
                       params={"taskRunId": gate_b["id"]}).json()
    replay = wait_state(http, replay["id"], {"SUCCESS", "FAILED"})
    assert replay["state"] == "SUCCESS"
    before = {(r["taskId"], r["value"]): r for r in runs}
    for run in replay["taskRuns"]:
        if run["taskId"] in ("step",) or (run["taskId"], run["value"]) == ("gate", "a"):
            assert run["startDate"] == before[(run["taskId"], run["value"])]["startDate"]
    assert len(replay["taskRuns"]) == 5  # each, step a, gate a, step b, gate b


def test_resume_with_on_resume_inputs(http: httpx.Client, ns: str) -> None:
    deploy(http, f"""id: approval
namespace: {ns}
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.wait.onResume.approved }}}}"
outputs:
  - id: approved
    type: STRING
    value: "{{{{ outputs.after.value }}}}"
""")
    ex = http.post(f"/api/v1/executions/{ns}/approval").json()
    wait_state(http, ex["id"], {"PAUSED"})
    bad = http.post(f"/api/v1/executions/{ex['id']}/resume", data={"approved": "maybe"})
    assert bad.status_code == 422 and bad.json()["issues"][0]["path"] == "inputs.approved"
    missing = http.post(f"/api/v1/executions/{ex['id']}/resume")
    assert missing.status_code == 422
    ok = http.post(f"/api/v1/executions/{ex['id']}/resume", json={"approved": True})
    assert ok.status_code == 200, ok.text
    done = wait_state(http, ex["id"], {"SUCCESS", "FAILED"})
    assert done["outputs"] == {"approved": "true"}
    assert http.post(f"/api/v1/executions/{ex['id']}/resume").status_code == 409
