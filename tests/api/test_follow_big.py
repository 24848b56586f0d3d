"""Following a big execution by Server-Sent Events: a ForEach of 2,000 task runs makes an
execution document of about 1.6 MB. The stream must stay cheap (a big document is sent at
most about once per its own transfer budget, not on every change) while the last document
still says how the execution ended, sent as soon as it ends. Prints what it measured.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from kray.api.routes import executions as routes
from kray.api.routes.executions import event_gap
from tests.api.conftest import LiveServer, deploy, wait_state

pytestmark = pytest.mark.ray


def big(ns: str) -> str:
    return f"""id: big
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ range(1, 2000) | list }}}}"
    concurrencyLimit: 0
    tasks:
      - id: item
        type: io.kestra.plugin.core.log.Log
        message: "item {{{{ taskrun.value }}}}"
"""


def test_event_gap_keeps_small_documents_instant() -> None:
    assert event_gap(0) == event_gap(routes.SMALL_DOCUMENT) == 0.0
    assert 1.0 < event_gap(1_600_000) < 2.0  # the 2,000-run ForEach
    assert event_gap(routes.SMALL_DOCUMENT + 1) < event_gap(1_000_000) < event_gap(1_600_000)
    assert event_gap(10**9) == routes.MAX_GAP


def test_paced_follow_sends_the_end_at_once(live_server: LiveServer, ns: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every document paced at 5 s: the changes while the flow runs wait, its end does not."""
    monkeypatch.setattr(routes, "SMALL_DOCUMENT", 0)
    monkeypatch.setattr(routes, "DOCUMENT_RATE", 1)
    monkeypatch.setattr(routes, "MAX_GAP", 5.0)
    with live_server.client() as http:
        deploy(http, f"""id: short
namespace: {ns}
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: two
""")
        ex = http.post(f"/api/v1/executions/{ns}/short").json()
        started = time.monotonic()
        with http.stream("GET", f"/api/v1/executions/{ex['id']}/follow") as r:
            got = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        took = time.monotonic() - started
    assert got[-1] == {"state": "SUCCESS"} and got[-2]["state"] == "SUCCESS"
    assert len(got[-2]["taskRuns"]) == 3
    assert len(got) == 3  # the first document, the last one, the end: nothing between
    assert took < 4.5, took  # not held for the 5 s gap


@pytest.mark.slow
def test_follow_a_2000_task_run_foreach(live_server: LiveServer, ns: str) -> None:
    with live_server.client() as http:
        deploy(http, big(ns))
        ex = http.post(f"/api/v1/executions/{ns}/big").json()
        started = time.monotonic()
        arrivals: list[tuple[float, int, dict]] = []  # (time, bytes, document) per event
        total = 0
        ended_at = None
        last_wall = 0.0
        with http.stream("GET", f"/api/v1/executions/{ex['id']}/follow") as r:
            assert r.status_code == 200
            event = None
            for line in r.iter_lines():
                total += len(line) + 1
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "execution":
                    arrivals.append((time.monotonic(), len(line), json.loads(line[6:])))
                    last_wall = time.time()
                elif line.startswith("data: ") and event == "end":
                    ended_at = time.monotonic()
        stored = wait_state(http, ex["id"], {"SUCCESS", "FAILED"})

    sizes = [size for _, size, _ in arrivals]
    ended = datetime.fromisoformat(stored["endDate"].replace("Z", "+00:00")).timestamp()
    print(f"\nfollow of a 2,000-run ForEach: {len(arrivals)} execution events, "
          f"{total / 1e6:.1f} MB in all, largest event {max(sizes) / 1e6:.2f} MB, "
          f"{arrivals[-1][0] - started:.1f} s to the last event, which came "
          f"{(last_wall - ended) * 1000:.0f} ms after the end")
    assert stored["state"] == "SUCCESS" and len(stored["taskRuns"]) == 2001
    last = arrivals[-1][2]
    assert last["state"] == "SUCCESS" and len(last["taskRuns"]) == 2001
    assert [run["state"] for run in last["taskRuns"]] == ["SUCCESS"] * 2001
    assert ended_at is not None and ended_at - arrivals[-1][0] < 1.0
    # Paced: after a big event the next one (but the last, which comes at once) waits.
    for (at, size, _), (then, _, _) in zip(arrivals, arrivals[1:-1]):
        assert then - at >= 0.9 * event_gap(size), (size, then - at)
    assert len(arrivals) < 30 and total < 40e6
