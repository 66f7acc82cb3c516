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


def test_lasting_backends_tell_a_warm_up_from_a_leak() -> None:
    from ops.bench.soak import Sampler

    sampler = Sampler.__new__(Sampler)  # the arithmetic only: no database, no thread
    sampler.every = 5.0
    sampler.seen = {1: ("oneauth", "COMMIT"), 2: ("oneauth", "SELECT 1")}
    ts = [float(t) for t in range(0, 605, 5)]
    warm = [(t, 4000.0 + min(t, 120.0) * 10) for t in ts]  # grows for 2 minutes, then flat
    leak = [(t, 4000.0 + t * 2) for t in ts]  # 120 KiB/min for ever
    gone = [(t, 9000.0) for t in ts[:20]]  # replaced early: not lasting
    sampler.backends = {1: warm, 2: leak, 3: gone}
    out = sampler.lasting_backends(warmup=30.0)
    assert out["backends"] == 2
    assert out["client_backends_seen"] == 3
    assert out["anon_kib_max_any"] == 9000.0
    assert out["kib_per_minute_sum_second_half"] == 120.0  # only the leak grows late
    assert out["kib_per_minute_sum_first_half"] > 120.0  # the warm-up adds to the leak
    assert out["growers"][0]["last_query"] == "SELECT 1"
    assert out["growers"][0]["kib_per_minute"] == 120.0
