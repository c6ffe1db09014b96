from __future__ import annotations

import asyncio

import pytest

from lblab.workloads.capacity import CapacityModel, Overloaded
from lblab.workloads.client import ClientConfig, schedule


def test_constant_schedule_is_evenly_spaced():
    times = schedule(ClientConfig(targets=["x"], rate=10, duration_s=1, arrival="constant"))
    assert len(times) == 9 and times[0] == pytest.approx(0.1)


def test_poisson_schedule_is_reproducible_and_near_the_rate():
    cfg = ClientConfig(targets=["x"], rate=200, duration_s=50, seed=3)
    a, b = schedule(cfg), schedule(cfg)
    assert a == b
    assert len(a) == pytest.approx(200 * 50, rel=0.05)


def test_full_queue_refuses_at_once():
    async def scenario():
        model = CapacityModel(workers=1, queue_limit=1)
        running = [asyncio.create_task(model.serve(0.2)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await model.serve(0.2)
        await asyncio.gather(*running)
        return model.stats

    stats = asyncio.run(scenario())
    assert (stats.arrived, stats.served, stats.rejected) == (3, 2, 1)


def test_workers_bound_concurrency():
    async def scenario():
        model = CapacityModel(workers=2, queue_limit=10)
        peak = 0

        async def watch():
            nonlocal peak
            for _ in range(20):
                peak = max(peak, model.stats.busy)
                await asyncio.sleep(0.005)

        await asyncio.gather(watch(), *[model.serve(0.03) for _ in range(6)])
        return peak

    assert asyncio.run(scenario()) == 2


def test_busy_seconds_count_the_work_done_and_in_progress():
    async def scenario():
        model = CapacityModel(workers=2, queue_limit=10)
        t0 = model.stats.busy_s
        running = [asyncio.create_task(model.serve(0.1)) for _ in range(3)]
        await asyncio.sleep(0.05)
        midway = model.stats.busy_s - t0  # two workers busy for 0.05 s
        await asyncio.gather(*running)
        return midway, model.stats.busy_s - t0

    midway, total = asyncio.run(scenario())
    assert midway == pytest.approx(0.1, abs=0.02)
    assert total == pytest.approx(0.3, abs=0.03)


def test_sampled_counters_are_read_between_and_after_samples():
    from lblab.metrics import counter_at, counter_delta

    samples = [{"t": -0.5, "n": 99}, {"t": 1.0, "n": 10}, {"t": 3.0, "n": 30}]
    assert counter_at(samples, "n", 0.5) == 5  # from 0 at t = 0; the pre-start sample ignored
    assert counter_at(samples, "n", 2.0) == 20
    assert counter_at(samples, "n", 9.0) == 30  # holds its last value
    assert counter_delta(samples, "n", 1.0, 2.5) == 15
