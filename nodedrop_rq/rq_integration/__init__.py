"""Everything that touches RQ: the job function, the worker, the pool, maintenance, the retry scheduler.

This is the only package that imports RQ's internals; each private RQ name it still relies on is
listed in ``private.py`` (and checked by a test). The rest of nodedrop-rq talks to RQ through
``queueing.py`` (enqueue, fetch, requeue, cancel) and ``names.py`` (RQ's key names and serializer). The
one exception is ``nodedrop_rq/schedules/``, which is built on rq-scheduler's public API.
"""
