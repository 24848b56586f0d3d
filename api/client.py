"""The API's one way to the executor actor.

Every call awaits the actor's ObjectRef on the event loop, so no request blocks another; a
kray error raised inside the executor comes back as itself (not wrapped by Ray), so the
exception handlers map it to its HTTP status.
"""

from __future__ import annotations

from typing import Any

from kray.errors import KrayError


class ExecutorUnavailable(KrayError):
    """The executor actor cannot be reached (restarting, or the cluster is gone)."""


class ExecutorClient:
    def __init__(self, actor: Any):
        self.actor = actor

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import ray.exceptions as rex

        try:
            return await getattr(self.actor, method).remote(*args, **kwargs)
        except rex.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise
        except (rex.RayActorError, rex.ActorUnavailableError, rex.ObjectLostError) as e:
            raise ExecutorUnavailable(f"the executor is unavailable: {type(e).__name__}") \
                from None


__all__ = ["ExecutorClient", "ExecutorUnavailable"]
