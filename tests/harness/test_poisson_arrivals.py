"""Poisson arrivals (harness/pacer.py), pure: no clock, no sleeping.

The arrival times come from `wait()` exactly as the dispatcher uses it, stepping time from one
arrival to the next. Seeds are fixed, so every figure here is deterministic: the tests check the
distribution (chi-square against Poisson), not luck.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from chatload.harness.pacer import Poisson, Schedule, Share, Uniform, spacing, wait
from chatload.harness.scenario.model import Stage

Z_999 = 3.09  # one-sided standard normal quantile for p = 0.001


def arrival_times(schedule: Schedule, process, share: Share | None = None) -> list[float]:
    share = share or Share()
    times: list[float] = []
    t = 0.0
    while True:
        delay = wait(schedule, t, len(times), share, process)
        if math.isinf(delay):
            return times
        t += delay
        times.append(t)


def counts_per_interval(times: list[float], width: float, n: int) -> list[int]:
    counts = [0] * n
    for t in times:
        index = min(int(t // width), n - 1)
        counts[index] += 1
    return counts


def chi_square_vs_poisson(counts: list[int], mean: float) -> tuple[float, float]:
    """(statistic, critical value at p = 0.001): tail classes merged so every class expects >= 5."""
    n = len(counts)
    observed = Counter(counts)
    pmf = lambda k: math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))  # noqa: E731
    classes: list[tuple[int, int]] = []  # (first k, last k) of each class
    k = 0
    low = 0
    while True:
        expected = n * sum(pmf(j) for j in range(low, k + 1))
        if expected >= 5:
            classes.append((low, k))
            low = k + 1
        k += 1
        if n * (1 - sum(pmf(j) for j in range(0, low))) < 10:
            break
    classes.append((low, 10**6))
    stat = 0.0
    for first, last in classes:
        p = 1 - sum(pmf(j) for j in range(0, first)) if last == 10**6 else sum(pmf(j) for j in range(first, last + 1))
        expected = n * p
        got = sum(v for key, v in observed.items() if first <= key <= last)
        stat += (got - expected) ** 2 / expected
    df = len(classes) - 1
    critical = df * (1 - 2 / (9 * df) + Z_999 * math.sqrt(2 / (9 * df))) ** 3  # Wilson-Hilferty
    return stat, critical


@pytest.mark.parametrize(("rate", "seed"), [(0.8, 1), (4.5, 2), (20.0, 3), (60.0, 4)])
def test_counts_per_second_are_poisson(rate, seed):
    seconds = 2000
    schedule = Schedule([Stage("flat", seconds, rate)])
    times = arrival_times(schedule, spacing("poisson", seed, "local"))
    counts = counts_per_interval(times, 1.0, seconds)
    mean = sum(counts) / seconds
    variance = sum((c - mean) ** 2 for c in counts) / (seconds - 1)
    assert mean == pytest.approx(rate, rel=4 / math.sqrt(rate * seconds))
    assert variance / mean == pytest.approx(1.0, abs=0.15)  # dispersion index of Poisson
    stat, critical = chi_square_vs_poisson(counts, rate)
    assert stat < critical, (stat, critical)


def test_uniform_arrivals_are_not_dispersed():
    schedule = Schedule([Stage("flat", 100, 4.5)])
    counts = counts_per_interval(arrival_times(schedule, Uniform()), 1.0, 100)
    assert set(counts) <= {4, 5}
    mean = sum(counts) / len(counts)
    assert sum((c - mean) ** 2 for c in counts) / (len(counts) - 1) / mean < 0.1


def test_a_ramp_integrates_to_the_expected_count():
    # linear 0 -> 10/s over 20 s: A(20) = 100, A(10) = 25; over many seeds the counts average that
    schedule = Schedule([Stage("ramp", 20, 10, ramp="linear")])
    totals, firsts = [], []
    for seed in range(300):
        times = arrival_times(schedule, spacing("poisson", seed, "local"))
        totals.append(len(times))
        firsts.append(sum(1 for t in times if t <= 10))
    assert sum(totals) / 300 == pytest.approx(100, abs=4 * math.sqrt(100 / 300))
    assert sum(firsts) / 300 == pytest.approx(25, abs=4 * math.sqrt(25 / 300))
    # the counts of one interval of the ramp are Poisson with the integral of the rate as mean:
    # (5, 6] s holds A(6) - A(5) = 0.25 * (36 - 25) = 2.75 on average
    window = [sum(1 for t in arrival_times(schedule, spacing("poisson", s, "w")) if 5 < t <= 6) for s in range(400)]
    mean = sum(window) / len(window)
    assert mean == pytest.approx(2.75, abs=4 * math.sqrt(2.75 / 400))
    assert sum((c - mean) ** 2 for c in window) / (len(window) - 1) / mean == pytest.approx(1, abs=0.2)


def test_the_same_seed_gives_the_same_times_and_streams_differ():
    schedule = Schedule([Stage("a", 30, 5), Stage("b", 30, 12, ramp="linear")])
    first = arrival_times(schedule, spacing("poisson", 7, "local"))
    again = arrival_times(schedule, spacing("poisson", 7, "local"))
    assert first == again and len(first) > 100
    assert arrival_times(schedule, spacing("poisson", 8, "local")) != first
    assert arrival_times(schedule, spacing("poisson", 7, "w1")) != first
    assert all(b >= a for a, b in itertools.pairwise(first))
    assert first[0] > 0 and first[-1] <= schedule.duration_s


def test_shares_sum_to_the_global_poisson_process():
    seconds, rate, n = 1500, 9.0, 3
    schedule = Schedule([Stage("flat", seconds, rate)])
    shares = [Share(fraction=1 / n, phase=(p + 1) / n) for p in range(n)]
    streams = [arrival_times(schedule, spacing("poisson", 11, f"w{p + 1}"), share) for p, share in enumerate(shares)]
    for stream in streams:  # each worker: Poisson at its share of the rate
        counts = counts_per_interval(stream, 1.0, seconds)
        assert sum(counts) / seconds == pytest.approx(rate / n, rel=0.06)
    merged = sorted(t for stream in streams for t in stream)
    counts = counts_per_interval(merged, 1.0, seconds)
    assert sum(counts) / seconds == pytest.approx(rate, rel=0.04)
    stat, critical = chi_square_vs_poisson(counts, rate)
    assert stat < critical, (stat, critical)


def test_a_rebased_share_goes_on_at_its_new_rate():
    # alone at 10/s for 100 s, then another worker joins and this one takes half
    schedule = Schedule([Stage("flat", 200, 10)])
    process = Poisson(random.Random("rebase"))
    share = Share()
    times: list[float] = []
    t = 0.0
    while t < 100:
        delay = wait(schedule, t, len(times), share, process)
        t += delay
        if t <= 100:
            times.append(t)
    share = share.rebased(schedule, 100.0, 0.5)
    while True:
        delay = wait(schedule, max(t, 100.0), len(times), share, process)
        if math.isinf(delay):
            break
        t = max(t, 100.0) + delay
        times.append(t)
    before = sum(1 for x in times if x <= 100)
    after = len(times) - before
    assert before == pytest.approx(1000, abs=4 * math.sqrt(1000))
    assert after == pytest.approx(500, abs=4 * math.sqrt(500))


def test_spacing_names_and_needs():
    assert isinstance(spacing("uniform", None, "local"), Uniform)
    with pytest.raises(ValueError, match="needs a seed"):
        spacing("poisson", None, "local")
    with pytest.raises(ValueError, match="expected one of"):
        spacing("bursty", 1, "local")
