"""Core tasks (being written)."""

TASKS: list = []
