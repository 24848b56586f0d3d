"""Cron ticks and the schedule planner, with an injected clock: no sleeps, no Ray."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kray.triggers.schedule import (
    Cron,
    Recover,
    backfill_ticks,
    plan_schedule,
    schedule_variables,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def walk(cron: Cron, start: datetime, n: int, *, back: bool = False) -> list[str]:
    out, t = [], start
    for _ in range(n):
        t = (cron.prev_before if back else cron.next_after)(t)
        out.append(cron.local(t).strftime("%m-%d %H:%M:%S%z"))
    return out


# -- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("nickname,spec", [
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"), ("@DAILY", "0 0 * * *")])
def test_nicknames_tick_like_their_expression(nickname: str, spec: str) -> None:
    start = utc(2024, 2, 27, 13, 17)
    assert walk(Cron(nickname), start, 4) == walk(Cron(spec), start, 4)


def test_nickname_with_seconds_fires_at_second_zero() -> None:
    cron = Cron("@hourly", with_seconds=True)
    assert cron.next_after(utc(2024, 1, 1, 5, 0, 0)) == utc(2024, 1, 1, 6, 0, 0)


def test_six_fields_put_seconds_first() -> None:
    cron = Cron("*/20 * * * * *", with_seconds=True)
    assert list(cron.ticks(utc(2024, 1, 1), utc(2024, 1, 1, 0, 1))) == [
        utc(2024, 1, 1, 0, 0, 0), utc(2024, 1, 1, 0, 0, 20), utc(2024, 1, 1, 0, 0, 40)]
    assert Cron("30 0 9 * * *", with_seconds=True).next_after(utc(2024, 1, 1)) \
        == utc(2024, 1, 1, 9, 0, 30)


@pytest.mark.parametrize("expression,seconds,message", [
    ("* * * * * *", False, "has 6 fields, expected 5; set withSeconds: true"),
    ("* * * * *", True, "has 5 fields, expected 6 (seconds first"),
    ("61 * * * *", False, "invalid cron '61 * * * *'"),
    ("* * *", False, "has 3 fields, expected 5"),
    ("", False, "has 0 fields"),
    ("@fortnightly", False, "unknown cron nickname '@fortnightly'; use one of @yearly"),
    ("0 0 30 2 *", False, "never fires"),
])
def test_bad_expressions_say_why(expression: str, seconds: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*")):
        Cron(expression, with_seconds=seconds)


def test_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Cron("@daily", "Mars/Olympus")


def test_next_and_previous_are_strict() -> None:
    cron = Cron("*/15 * * * *")
    at = utc(2024, 1, 1, 10, 15)
    assert cron.next_after(at) == utc(2024, 1, 1, 10, 30)
    assert cron.prev_before(at) == utc(2024, 1, 1, 10, 0)
    assert cron.last_at_or_before(at) == at
    assert cron.next_after(at - timedelta(microseconds=1)) == at


# -- time zones and daylight saving ----------------------------------------------------------

def test_time_zone_reads_the_local_wall_clock() -> None:
    cron = Cron("0 9 * * *", "America/New_York")
    assert cron.next_after(utc(2024, 1, 10)) == utc(2024, 1, 10, 14)  # EST: UTC-5
    assert cron.next_after(utc(2024, 7, 10)) == utc(2024, 7, 10, 13)  # EDT: UTC-4


def test_daily_job_in_a_skipped_hour_runs_once_shifted_forward() -> None:
    # Europe/Paris, 2024-03-31: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    cron = Cron("30 2 * * *", "Europe/Paris")
    assert walk(cron, utc(2024, 3, 29, 12), 4) == [
        "03-30 02:30:00+0100", "03-31 03:30:00+0200", "04-01 02:30:00+0200",
        "04-02 02:30:00+0200"]
    assert walk(cron, utc(2024, 4, 2, 12), 4, back=True) == [
        "04-02 02:30:00+0200", "04-01 02:30:00+0200", "03-31 03:30:00+0200",
        "03-30 02:30:00+0100"]


def test_daily_job_in_a_repeated_hour_runs_once() -> None:
    # 2024-10-27: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, the job runs once.
    cron = Cron("30 2 * * *", "Europe/Paris")
    assert walk(cron, utc(2024, 10, 25, 12), 3) == [
        "10-26 02:30:00+0200", "10-27 02:30:00+0200", "10-28 02:30:00+0100"]
    assert walk(cron, utc(2024, 10, 28, 12), 3, back=True) == [
        "10-28 02:30:00+0100", "10-27 02:30:00+0200", "10-26 02:30:00+0200"]


def test_every_hour_schedules_follow_elapsed_time_across_changes() -> None:
    cron = Cron("*/30 * * * *", "Europe/Paris")
    assert walk(cron, utc(2024, 10, 26, 23), 6) == [  # the repeated hour runs twice
        "10-27 01:30:00+0200", "10-27 02:00:00+0200", "10-27 02:30:00+0200",
        "10-27 02:00:00+0100", "10-27 02:30:00+0100", "10-27 03:00:00+0100"]
    assert walk(cron, utc(2024, 10, 27, 2, 30), 6, back=True) == [
        "10-27 03:00:00+0100", "10-27 02:30:00+0100", "10-27 02:00:00+0100",
        "10-27 02:30:00+0200", "10-27 02:00:00+0200", "10-27 01:30:00+0200"]
    assert walk(cron, utc(2024, 3, 31, 0), 4) == [  # the skipped hour is simply gone
        "03-31 01:30:00+0100", "03-31 03:00:00+0200", "03-31 03:30:00+0200",
        "03-31 04:00:00+0200"]
    ticks = list(cron.ticks(utc(2024, 10, 26, 22), utc(2024, 10, 27, 4)))
    assert len(ticks) == len(set(ticks)) == 12  # 6 hours of elapsed time, 2 ticks each
    assert ticks == sorted(ticks)


def test_midnight_that_does_not_exist() -> None:
    # America/Sao_Paulo, 2018-11-04: the clock jumped from 00:00 to 01:00.
    cron = Cron("0 0 * * *", "America/Sao_Paulo")
    assert walk(cron, utc(2018, 11, 2, 12), 3) == [
        "11-03 00:00:00-0300", "11-04 01:00:00-0200", "11-05 00:00:00-0200"]


def test_seconds_schedules_stay_fast_near_a_change() -> None:
    cron = Cron("* * * * * *", "Europe/Paris", with_seconds=True)
    start = utc(2024, 10, 27, 0, 59, 58)
    ticks = list(cron.ticks(start, start + timedelta(seconds=4)))
    assert ticks == [start + timedelta(seconds=i) for i in range(4)]


# -- the planner -----------------------------------------------------------------------------

HOURLY = Cron("0 * * * *")
T0 = utc(2024, 5, 1, 10, 0)


def test_a_new_trigger_starts_from_now() -> None:
    plan = plan_schedule(HOURLY, watermark=None, now=T0 + timedelta(minutes=5), since=T0)
    assert plan.fire == () and plan.watermark == T0 + timedelta(minutes=5)
    assert plan.next_tick == utc(2024, 5, 1, 11)


def test_a_due_tick_fires_once() -> None:
    now = utc(2024, 5, 1, 11, 0, 0, 2000)
    plan = plan_schedule(HOURLY, watermark=T0 + timedelta(minutes=5), now=now, since=T0)
    assert plan.fire == (utc(2024, 5, 1, 11),)
    assert plan.next_tick == utc(2024, 5, 1, 12)
    again = plan_schedule(HOURLY, watermark=plan.watermark, now=now, since=T0)
    assert again.fire == () and again.next_tick == utc(2024, 5, 1, 12)


def test_timer_firing_early_fires_nothing_and_aims_at_the_same_tick() -> None:
    now = utc(2024, 5, 1, 10, 59, 59, 999000)
    plan = plan_schedule(HOURLY, watermark=T0, now=now, since=T0)
    assert plan.fire == () and plan.next_tick == utc(2024, 5, 1, 11)


# The executor was down from 10:30 to 15:10: it restarted at 15:10 (since), planning at once.
DOWN = {"watermark": utc(2024, 5, 1, 10, 30), "now": utc(2024, 5, 1, 15, 10),
        "since": utc(2024, 5, 1, 15, 10)}


def test_recover_all_missed_ticks() -> None:
    plan = plan_schedule(HOURLY, recover=Recover.ALL, **DOWN)
    assert plan.fire == tuple(utc(2024, 5, 1, h) for h in (11, 12, 13, 14, 15))
    assert plan.next_tick == utc(2024, 5, 1, 16)


def test_recover_last_missed_tick_only() -> None:
    plan = plan_schedule(HOURLY, recover=Recover.LAST, **DOWN)
    assert plan.fire == (utc(2024, 5, 1, 15),)
    assert plan.watermark == DOWN["now"] and plan.next_tick == utc(2024, 5, 1, 16)


def test_recover_none() -> None:
    plan = plan_schedule(HOURLY, recover=Recover.NONE, **DOWN)
    assert plan.fire == () and plan.next_tick == utc(2024, 5, 1, 16)


def test_recover_policy_spares_ticks_that_came_after_the_restart() -> None:
    # Restarted at 12:20 (missed 11:00 and 12:00), then busy until 14:05 (13:00, 14:00 due).
    args = {"watermark": utc(2024, 5, 1, 10, 30), "now": utc(2024, 5, 1, 14, 5),
            "since": utc(2024, 5, 1, 12, 20)}
    assert plan_schedule(HOURLY, recover=Recover.NONE, **args).fire == (
        utc(2024, 5, 1, 13), utc(2024, 5, 1, 14))
    assert plan_schedule(HOURLY, recover=Recover.LAST, **args).fire == (
        utc(2024, 5, 1, 12), utc(2024, 5, 1, 13), utc(2024, 5, 1, 14))


def test_late_maximum_delay_skips_stale_ticks() -> None:
    plan = plan_schedule(HOURLY, recover=Recover.ALL, late_maximum_delay=timedelta(hours=2),
                         **DOWN)
    assert plan.fire == (utc(2024, 5, 1, 14), utc(2024, 5, 1, 15))
    assert plan.late == (utc(2024, 5, 1, 11), utc(2024, 5, 1, 12), utc(2024, 5, 1, 13))
    on_time = plan_schedule(HOURLY, watermark=T0, now=utc(2024, 5, 1, 11, 0, 30), since=T0,
                            late_maximum_delay=timedelta(seconds=10))
    assert on_time.fire == () and on_time.late == (utc(2024, 5, 1, 11),)


def test_a_long_downtime_is_planned_in_rounds() -> None:
    every_minute = Cron("* * * * *")
    start = utc(2024, 5, 1)
    now = start + timedelta(minutes=250)
    fired: list[datetime] = []
    watermark = start
    for _ in range(5):
        plan = plan_schedule(every_minute, watermark=watermark, now=now, since=now, limit=100)
        fired += plan.fire
        watermark = plan.watermark
        if not plan.more:
            break
    assert fired == [start + timedelta(minutes=i) for i in range(1, 251)]


def test_schedule_variables_on_the_local_clock() -> None:
    cron = Cron("0 9 * * 1-5", "Europe/Paris")
    tick = cron.next_after(utc(2024, 5, 3, 12))  # Friday noon -> Monday 09:00
    assert schedule_variables(cron, tick) == {
        "date": "2024-05-06T09:00:00+02:00", "next": "2024-05-07T09:00:00+02:00",
        "previous": "2024-05-03T09:00:00+02:00"}


# -- backfill --------------------------------------------------------------------------------

def test_backfill_ticks_cover_start_inclusive_end_exclusive_in_batches() -> None:
    start, end = utc(2024, 5, 1, 10), utc(2024, 5, 1, 15)
    first, done = backfill_ticks(HOURLY, start=start, end=end, after=None, limit=3)
    assert first == [utc(2024, 5, 1, h) for h in (10, 11, 12)] and not done
    rest, done = backfill_ticks(HOURLY, start=start, end=end, after=first[-1], limit=3)
    assert rest == [utc(2024, 5, 1, 13), utc(2024, 5, 1, 14)] and done
    assert backfill_ticks(HOURLY, start=start, end=end, after=rest[-1], limit=3) == ([], True)
    between, _ = backfill_ticks(HOURLY, start=utc(2024, 5, 1, 10, 1), end=end, after=None,
                                limit=10)
    assert between[0] == utc(2024, 5, 1, 11)
