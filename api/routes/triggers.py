"""Webhook and trigger routes (owned by the scheduler's author)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
