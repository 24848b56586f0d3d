"""The API's live server (``tests.api.conftest``) for the webhook and trigger route tests."""

from __future__ import annotations

from tests.api.conftest import api_settings, http, live_server

__all__ = ["api_settings", "http", "live_server"]
