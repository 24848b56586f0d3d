"""What the trigger tests that run on Ray share: waiting, searching a flow's executions,
reading a trigger's context, and a flow deployed for the length of a ``with`` block."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """``check()``'s first truthy answer, polled every 50 ms; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def search(ray: Any, executor: Any, namespace: str, flow_id: str) -> list[dict]:
    """Every execution of the flow, oldest first."""
    page = ray.get(executor.search_executions.remote(namespace=namespace, flow_id=flow_id,
                                                     size=10000, sort="startDate:asc"))
    return page["results"]  # type: ignore[no-any-return]


def trigger_context(ray: Any, executor: Any, namespace: str, flow_id: str,
                    trigger_id: str = "watch") -> dict:
    """The trigger's ``triggerContext`` as the API shows it (status, position, errors...)."""
    return ray.get(executor.trigger.remote(namespace, flow_id, trigger_id))["triggerContext"]


@contextmanager
def deployed(ray: Any, executor: Any, namespace: str, flow_id: str, source: str,
             timeout: float = 30.0) -> Iterator[dict]:
    """The flow deployed and its trigger ``watch`` RUNNING (its context is yielded); the flow
    deleted on the way out, whatever happened."""
    ray.get(executor.deploy.remote(source))
    try:
        yield wait_for(lambda: (c := trigger_context(ray, executor, namespace, flow_id))
                       ["status"] == "RUNNING" and c, timeout=timeout,
                       what=f"the trigger of {flow_id} to run")
    finally:
        try:
            ray.get(executor.delete_flow.remote(namespace, flow_id))
        except Exception:
            pass


__all__ = ["deployed", "search", "trigger_context", "wait_for"]
