"""Cron schedules: parsing, validation and the next firing time, with croniter.

A schedule has 5 fields (minute hour day month weekday) or 6, the sixth being
seconds (croniter's convention), or is one of croniter's `@hourly`-style aliases.
It is read in the cron's IANA timezone (UTC when none is given), and every time
runlane stores or compares is UTC.
"""

from __future__ import annotations

import datetime
import zoneinfo

from croniter import CroniterBadDateError, croniter

from runlane.errors import BadSchedule

UTC = datetime.UTC


def timezone_of(name: str | None) -> datetime.tzinfo:
    if name is None or name.upper() == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except Exception:  # noqa: BLE001 - not found, malformed, too long ...: a 422
        raise BadSchedule(f"timezone {name!r} is not an IANA timezone name "
                          "(for example 'UTC', 'Europe/Paris', 'America/New_York')") from None


def validate(schedule: str, timezone: str | None = None) -> None:
    """Raise BadSchedule unless `schedule` parses and fires at least once more."""
    next_after(schedule, timezone, datetime.datetime.now(UTC))


def next_after(schedule: str, timezone: str | None, after: datetime.datetime) -> datetime.datetime:
    """The first firing strictly after `after`, in UTC."""
    expression = schedule.strip()
    if not expression.startswith("@") and len(expression.split()) not in (5, 6):
        raise BadSchedule(
            f"schedule {schedule!r} has {len(expression.split())} fields; a cron schedule has 5 "
            "(minute hour day month weekday) or 6 (the sixth is seconds), e.g. '*/5 * * * *'")
    tz = timezone_of(timezone)
    try:
        valid = croniter.is_valid(expression)
    except Exception:  # noqa: BLE001 - croniter's own check failing means invalid
        valid = False
    if not valid:
        raise BadSchedule(f"schedule {schedule!r} is not a valid cron expression "
                          "(5 fields: minute hour day month weekday, or 6 with seconds last)")
    try:
        fire = croniter(expression, after.astimezone(tz)).get_next(datetime.datetime)
    except CroniterBadDateError:
        raise BadSchedule(f"schedule {schedule!r} never fires") from None
    except Exception as exc:  # noqa: BLE001 - croniter's parser is the judge of what it cannot read
        raise BadSchedule(f"schedule {schedule!r} cannot be scheduled: {exc}") from None
    return fire.astimezone(UTC)
