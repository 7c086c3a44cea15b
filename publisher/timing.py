"""Pure time rules: quiet hours for pushes to followers."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def in_quiet_hours(moment: datetime, zone: ZoneInfo, start: time, end: time) -> bool:
    """Whether ``moment`` falls in the nightly quiet hours (which may span midnight)."""
    local = moment.astimezone(zone).time()
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def after_quiet_hours(moment: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """``moment`` itself, or the end of the quiet hours it falls in (UTC)."""
    if not in_quiet_hours(moment, zone, start, end):
        return moment
    local = moment.astimezone(zone)
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    # Rebuild from the wall-clock time so a DST change (none in Asia/Shanghai, but in
    # other zones) still lands on the configured hour.
    naive = candidate.replace(tzinfo=None)
    return naive.replace(tzinfo=zone).astimezone(UTC)
