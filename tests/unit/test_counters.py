import fakeredis

from nodedrop_rq import counters, keys


def test_durations_land_in_one_bucket_and_read_back_cumulatively():
    connection = fakeredis.FakeRedis()
    with connection.pipeline() as pipe:
        for seconds in (0.004, 0.3, 0.3, 7.0, 5000.0):
            counters.record_outcome(pipe, "q", counters.COMPLETED, seconds)
        pipe.execute()
    raw = counters.decode(connection.hgetall(keys.counters("q")))
    assert raw[counters.COMPLETED] == "5"
    assert float(raw[counters.DURATION_SUM]) == 0.004 + 0.3 + 0.3 + 7.0 + 5000.0
    buckets = dict(counters.cumulative_buckets(raw))
    assert buckets["0.01"] == 1
    assert buckets["0.25"] == 1
    assert buckets["0.5"] == 3
    assert buckets["10"] == 4
    assert buckets["1800"] == 4
    assert buckets["+Inf"] == 5


def test_outcome_without_duration_only_counts():
    connection = fakeredis.FakeRedis()
    with connection.pipeline() as pipe:
        counters.record_outcome(pipe, "q", counters.CANCELLED, None)
        pipe.execute()
    raw = counters.decode(connection.hgetall(keys.counters("q")))
    assert raw == {counters.CANCELLED: "1"}
