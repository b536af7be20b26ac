"""nodedrop_workers_desired's formula and the exporter's rate window, pure (no Redis)."""

from __future__ import annotations

import pytest

from exporter.desired import MIN_RATE_INTERVAL_SECONDS, RateWindow, desired_workers


def desired(waiting: int = 0, active: int = 0, rate: float | None = None, mean: float | None = None,
            target: float = 5.0, concurrency: int = 5) -> int:
    return desired_workers(waiting=waiting, active=active, arrival_rate=rate, mean_duration=mean,
                           target_wait=target, concurrency=concurrency)


def test_zero_load_wants_no_worker():
    assert desired() == 0
    assert desired(rate=0.0, mean=2.0) == 0
    assert desired(rate=None, mean=None) == 0


def test_steady_load_is_littles_law():
    # 10 executions/s of 2 s each keep 20 busy: 4 containers of 5.
    assert desired(rate=10.0, mean=2.0, active=20) == 4
    # Exactly 10 processes at concurrency 5 are 2 containers, not 3 (floating point).
    assert desired(rate=0.1 * 3, mean=100 / 3, active=0) == 2
    # Short executions arriving steadily still want one container, though none runs at the moment.
    assert desired(rate=0.5, mean=0.01) == 1
    # Never fewer than run now (a scale-in would cut them off).
    assert desired(rate=1.0, mean=1.0, active=12) == 3


def test_backlog_is_drained_within_the_target():
    # The README's example: 8/s of 1.5 s = 12 busy; 40 waiting drained in 5 s need 40 * 1.5 / 5 = 12 more.
    assert desired(rate=8.0, mean=1.5, active=10, waiting=40) == 5
    # The backlog alone, with nothing arriving: 100 waiting of 0.5 s within 5 s = 10 processes.
    assert desired(waiting=100, mean=0.5, rate=0.0) == 2
    # One waiting execution of any length wants a container.
    assert desired(waiting=1, mean=0.001, rate=0.0) == 1


def test_a_tighter_target_wants_more_workers():
    load = {"rate": 2.0, "mean": 3.0, "active": 6, "waiting": 30}
    assert [desired(target=t, **load) for t in (60.0, 5.0, 1.0)] == [2, 5, 20]
    # Without a backlog the target does not matter: Little's law alone.
    assert {desired(target=t, rate=2.0, mean=3.0, active=6) for t in (60.0, 5.0, 1.0)} == {2}


def test_before_any_duration_is_known_it_is_the_depth_rule():
    assert desired(waiting=9, active=2, rate=3.0, mean=None, concurrency=4) == 3  # ceil(11 / 4)


def test_concurrency_divides_processes_into_containers():
    assert [desired(rate=10.0, mean=2.0, concurrency=c) for c in (1, 5, 8, 20, 50)] == [20, 4, 3, 1, 1]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        desired(target=0)
    with pytest.raises(ValueError):
        desired(concurrency=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_counts_starts_and_queue_growth_as_arrivals():
    clock = Clock()
    window = RateWindow(window=60, clock=clock)
    first = window.observe("q", starts=100, waiting=0, ended=100, duration_sum=50)
    assert (first.arrival_rate, first.mean_duration) == (None, 0.5)  # no rate from one scrape
    clock.now += 10
    # 20 started and 30 more wait: 50 arrivals in 10 s; the 20 that ended took 2 s each.
    later = window.observe("q", starts=120, waiting=30, ended=120, duration_sum=90)
    assert (later.arrival_rate, later.mean_duration) == (5.0, 2.0)


def test_the_window_slides_and_ignores_scrapes_too_close_together():
    clock = Clock()
    window = RateWindow(window=60, clock=clock)
    window.observe("q", starts=0, waiting=0, ended=0, duration_sum=0)
    clock.now += MIN_RATE_INTERVAL_SECONDS / 2
    assert window.observe("q", starts=5, waiting=0, ended=0, duration_sum=0).arrival_rate is None
    for _ in range(10):  # a steady 1/s for 150 s, scraped every 15 s
        clock.now += 15
        last = window.observe("q", starts=5 + (clock.now - 1000), waiting=0, ended=0, duration_sum=0)
    assert last.arrival_rate == pytest.approx(1.0)
    assert last.mean_duration is None  # nothing ever ended


def test_a_counter_that_went_down_gives_no_rate():
    clock = Clock()
    window = RateWindow(window=60, clock=clock)
    window.observe("q", starts=500, waiting=0, ended=500, duration_sum=100)
    clock.now += 15
    after_flush = window.observe("q", starts=3, waiting=0, ended=2, duration_sum=4)
    assert (after_flush.arrival_rate, after_flush.mean_duration) == (None, 2.0)


def test_queues_are_kept_apart_and_forgotten_when_gone():
    clock = Clock()
    window = RateWindow(window=60, clock=clock)
    window.observe("a", starts=0, waiting=0, ended=0, duration_sum=0)
    window.observe("b", starts=0, waiting=0, ended=0, duration_sum=0)
    clock.now += 10
    assert window.observe("a", starts=10, waiting=0, ended=0, duration_sum=0).arrival_rate == 1.0
    window.forget_except({"a"})
    assert window.observe("b", starts=10, waiting=0, ended=0, duration_sum=0).arrival_rate is None
