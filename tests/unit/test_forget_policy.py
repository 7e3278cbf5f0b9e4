"""`apply_policy` (vault/ops/retention.py): which versions of one item a forget policy keeps.

Synthetic version records at controlled creation times (UTC, as `put` writes them). The semantics are
restic's: ``last`` keeps the N newest; ``daily``/``weekly``/``monthly`` keep the newest version of each of the
N most recent days / ISO weeks / months that have a version; a version kept by any rule is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vault.errors import UsageError
from vault.ops.retention import Policy, apply_policy
from vault.repo.catalog import VersionRecord


def _rec(version: int, when: datetime) -> VersionRecord:
    return VersionRecord(
        record_id=f"r{version:04d}",
        item="item",
        version=version,
        created=when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        type="file",
        tree=bytes(32),
        size=0,
        files=1,
        bytes_added=0,
        host="test",
    )


def _series(times: list[datetime]) -> list[VersionRecord]:
    """Versions numbered 1.. in the order of ``times`` (which must be ascending)."""
    assert times == sorted(times)
    return [_rec(i + 1, t) for i, t in enumerate(times)]


def _kept(records: list[VersionRecord], policy: Policy) -> list[int]:
    reasons = apply_policy(records, policy)
    assert set(reasons) == {r.record_id for r in records}
    by_id = {r.record_id: r for r in records}
    return sorted(by_id[rid].version for rid, why in reasons.items() if why)


def _reasons(records: list[VersionRecord], policy: Policy) -> dict[int, list[str]]:
    reasons = apply_policy(records, policy)
    by_id = {r.record_id: r for r in records}
    return {by_id[rid].version: why for rid, why in reasons.items()}


def _t(year: int, month: int, day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# -- keep-last -------------------------------------------------------------------------------------------------
def test_keep_last_keeps_the_newest_n() -> None:
    recs = _series([_t(2024, 3, 1) + timedelta(hours=i) for i in range(10)])
    assert _kept(recs, Policy(last=3)) == [8, 9, 10]
    assert all(why == ["last"] for v, why in _reasons(recs, Policy(last=3)).items() if v >= 8)


def test_keep_last_with_fewer_versions_than_n_keeps_all() -> None:
    recs = _series([_t(2024, 3, 1), _t(2024, 3, 2)])
    assert _kept(recs, Policy(last=5)) == [1, 2]


def test_keep_last_one_of_one() -> None:
    recs = _series([_t(2024, 3, 1)])
    assert _kept(recs, Policy(last=1)) == [1]


def test_input_order_does_not_matter() -> None:
    recs = _series([_t(2024, 3, d) for d in range(1, 11)])
    shuffled = [recs[i] for i in (4, 9, 0, 7, 2, 5, 1, 8, 3, 6)]
    assert _kept(shuffled, Policy(last=2, daily=4)) == _kept(recs, Policy(last=2, daily=4)) == [7, 8, 9, 10]


def test_same_created_time_orders_by_version() -> None:
    t = _t(2024, 3, 1)
    recs = [_rec(v, t) for v in (1, 2, 3)]
    assert _kept(recs, Policy(last=1)) == [3]


def test_subsecond_creation_times_order_correctly() -> None:
    base = _t(2024, 3, 1)
    recs = _series([base + timedelta(microseconds=us) for us in (0, 1, 999_999)])
    assert _kept(recs, Policy(last=1)) == [3]


# -- daily -----------------------------------------------------------------------------------------------------
def test_keep_daily_keeps_the_newest_of_each_day() -> None:
    times = []
    for day in range(1, 6):  # five days, three versions a day
        times += [_t(2024, 5, day, 8), _t(2024, 5, day, 13), _t(2024, 5, day, 22)]
    recs = _series(times)
    # newest of each day: versions 3, 6, 9, 12, 15; the three most recent days: 9, 12, 15
    assert _kept(recs, Policy(daily=3)) == [9, 12, 15]
    assert _kept(recs, Policy(daily=10)) == [3, 6, 9, 12, 15]


def test_keep_daily_uses_utc_day_boundaries() -> None:
    recs = _series([_t(2024, 5, 1, 23, 59, 59), _t(2024, 5, 2, 0, 0, 0), _t(2024, 5, 2, 0, 0, 1)])
    assert _kept(recs, Policy(daily=2)) == [1, 3]


def test_keep_daily_counts_days_with_versions_not_calendar_days() -> None:
    # a gap of weeks: the N most recent days *that have a version* are kept
    recs = _series([_t(2024, 1, 1), _t(2024, 1, 2), _t(2024, 2, 10), _t(2024, 3, 30)])
    assert _kept(recs, Policy(daily=3)) == [2, 3, 4]


# -- weekly ----------------------------------------------------------------------------------------------------
def test_keep_weekly_uses_iso_weeks() -> None:
    # 2024-01-07 is a Sunday (ISO 2024-W01), 2024-01-08 a Monday (W02): different weeks though one day apart.
    recs = _series([_t(2024, 1, 1), _t(2024, 1, 7, 23), _t(2024, 1, 8, 1), _t(2024, 1, 14)])
    assert _kept(recs, Policy(weekly=2)) == [2, 4]
    assert _kept(recs, Policy(weekly=5)) == [2, 4]


def test_keep_weekly_iso_week_spans_a_new_year() -> None:
    # 2020-12-31 (Thu) and 2021-01-03 (Sun) are both in ISO week 2020-W53; 2021-01-04 (Mon) is 2021-W01.
    recs = _series([_t(2020, 12, 28), _t(2020, 12, 31), _t(2021, 1, 3), _t(2021, 1, 4)])
    assert _kept(recs, Policy(weekly=2)) == [3, 4]
    assert _kept(recs, Policy(weekly=1)) == [4]


def test_keep_weekly_over_many_weeks() -> None:
    start = _t(2023, 12, 25, 0)  # a Monday (ISO 2023-W52), midnight
    times = [start + timedelta(days=d, hours=h) for d in range(28) for h in (6, 18)]  # 4 weeks, 2 a day
    recs = _series(times)
    # the last version of each week is its Sunday's 18:00 version: indices 13, 27, 41, 55 → versions 14, 28, 42, 56
    assert _kept(recs, Policy(weekly=4)) == [14, 28, 42, 56]
    assert _kept(recs, Policy(weekly=2)) == [42, 56]


# -- monthly ---------------------------------------------------------------------------------------------------
def test_keep_monthly() -> None:
    times = [_t(2023, m, d) for m in range(1, 13) for d in (1, 15, 28)]
    recs = _series(times)
    # newest of each month: its 28th → versions 3, 6, ..., 36
    assert _kept(recs, Policy(monthly=12)) == list(range(3, 37, 3))
    assert _kept(recs, Policy(monthly=3)) == [30, 33, 36]


def test_keep_monthly_across_a_year_boundary() -> None:
    recs = _series([_t(2023, 12, 1), _t(2023, 12, 31, 23), _t(2024, 1, 1, 0, 30), _t(2024, 1, 20)])
    assert _kept(recs, Policy(monthly=2)) == [2, 4]


def test_keep_monthly_with_fewer_months_than_n() -> None:
    recs = _series([_t(2024, 1, 1), _t(2024, 1, 5), _t(2024, 2, 1)])
    assert _kept(recs, Policy(monthly=24)) == [2, 3]


# -- combinations ----------------------------------------------------------------------------------------------
def test_combination_is_the_union_with_every_reason() -> None:
    # one version a day for 70 days from Mon 2024-01-01, at noon
    recs = _series([_t(2024, 1, 1) + timedelta(days=d) for d in range(70)])
    policy = Policy(last=2, daily=5, weekly=3, monthly=2)
    kept = _kept(recs, policy)
    last = {69, 70}
    daily = set(range(66, 71))
    # 2024-03-10 (version 70) is a Sunday; previous Sundays 03-03 (63), 02-25 (56)
    weekly = {70, 63, 56}
    # months: March's newest is 70, February's newest is 02-29 (version 60)
    monthly = {70, 60}
    assert kept == sorted(last | daily | weekly | monthly)
    reasons = _reasons(recs, policy)
    assert reasons[70] == ["last", "daily", "weekly", "monthly"]
    assert reasons[69] == ["last", "daily"]
    assert reasons[63] == ["weekly"]
    assert reasons[60] == ["monthly"]
    assert reasons[1] == []


def test_combination_keeps_nothing_twice_and_drops_the_rest() -> None:
    recs = _series([_t(2024, 6, 1, h) for h in range(0, 24, 2)])  # 12 versions in one day
    reasons = _reasons(recs, Policy(last=3, daily=7, weekly=4, monthly=12))
    kept = sorted(v for v, why in reasons.items() if why)
    assert kept == [10, 11, 12]
    assert reasons[12] == ["last", "daily", "weekly", "monthly"]
    assert reasons[11] == ["last"]


def test_zero_counts_keep_nothing_for_that_rule() -> None:
    recs = _series([_t(2024, 1, d) for d in range(1, 5)])
    assert _kept(recs, Policy(last=0, daily=1)) == [4]


def test_empty_input() -> None:
    assert apply_policy([], Policy(last=3)) == {}


# -- the policy's own checks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", [Policy(), Policy(0, 0, 0, 0)])
def test_a_policy_that_keeps_nothing_is_a_usage_error(policy: Policy) -> None:
    with pytest.raises(UsageError):
        policy.check()


@pytest.mark.parametrize("policy", [Policy(last=-1, daily=3), Policy(last=1, monthly=-2)])
def test_negative_counts_are_usage_errors(policy: Policy) -> None:
    with pytest.raises(UsageError):
        policy.check()


def test_valid_policies_pass_check() -> None:
    Policy(last=1).check()
    Policy(daily=7).check()
    Policy(weekly=4, monthly=12).check()
