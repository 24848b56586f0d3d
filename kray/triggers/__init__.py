"""Triggers: what starts an execution without a person asking (Schedule, Flow, Webhook).

The decisions are pure: cron ticks and which of them are due (``schedule``), trigger
conditions (``conditions``), upstream-flow preconditions (``preconditions``), the trigger
models (``models``) and what a triggered execution is created with (``firing``). ``runner``
carries them out inside the executor (timers, trigger state, creating executions); the
executor reaches it through ``kray.scheduler.SchedulerMixin``.
"""
