"""Read and management methods the API calls on the executor (being written).

``QueriesMixin`` is mixed into ``ExecutorService``.
"""

from __future__ import annotations


class QueriesMixin:
    pass
