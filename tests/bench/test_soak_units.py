"""The soak report's arithmetic (``ops.bench.soak``), without running a soak."""

from __future__ import annotations

from ops.bench.soak import _mix, slope_per_minute


def test_slope_is_kib_per_minute_by_least_squares() -> None:
    flat = [(float(t), 1000.0) for t in range(0, 600, 5)]
    assert slope_per_minute(flat) == 0.0
    growing = [(float(t), 1000.0 + t / 60 * 12) for t in range(0, 600, 5)]  # 12 KiB/min
    slope = slope_per_minute(growing)
    assert slope is not None
    assert abs(slope - 12.0) < 1e-6
    assert slope_per_minute([(0.0, 1.0), (1.0, 2.0)]) is None  # too few points


def test_the_mix_has_one_login_per_round() -> None:
    mix = _mix("client-1", "secret", 50)
    assert len(mix) == 50
    assert sum(r.path.endswith("/v1/login") for r in mix) == 1
    assert any("client_credentials" in r.body for r in mix)
