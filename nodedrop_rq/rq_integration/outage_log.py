"""One log line when a worker loses Redis and one when Redis answers again, instead of RQ's line per
reconnection attempt (two workers logged about 30 lines in an 8 s outage)."""

from __future__ import annotations

import logging

# The start of the message RQ's dequeue loop logs on every failed reconnection (rq/worker/base.py); if an
# RQ release rewords it, the repeats come through again and nothing else changes.
RQ_RECONNECT_MESSAGE = "Worker %s: could not connect to Redis instance"


class OutageLog(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.in_outage = False

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(RQ_RECONNECT_MESSAGE):
            if self.in_outage:
                return False
            self.in_outage = True
            record.msg += " (further attempts are not logged until Redis answers)"
        return True

    def answered(self, log: logging.Logger, who: str) -> None:
        """Called after a successful round trip."""
        if self.in_outage:
            self.in_outage = False
            log.info("Worker %s: Redis answers again", who)


_filter: OutageLog | None = None


def install(log: logging.Logger) -> OutageLog:
    """The process's one filter on RQ's worker logger (workers of one process share that logger)."""
    global _filter
    if _filter is None:
        _filter = OutageLog()
    if _filter not in log.filters:
        log.addFilter(_filter)
    return _filter
