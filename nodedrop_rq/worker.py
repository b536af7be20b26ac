"""The worker class named in deploy files and ``rq worker -w``; it lives in nodedrop_rq.rq_integration."""

from nodedrop_rq.rq_integration.worker import (  # noqa: F401
    CONCURRENCY_FIELD,
    POOL_FIELD,
    POOL_PID_FIELD,
    ExecutionWorker,
)
