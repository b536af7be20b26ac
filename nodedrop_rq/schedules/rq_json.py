"""rq-scheduler 0.14 has no serializer option and pickles by default; these classes make every job it
creates or reads use the JSON serializer like all other jobs, so no pickle ever enters Redis."""

from __future__ import annotations

from typing import Any

from rq.job import Job
from rq.queue import Queue

from nodedrop_rq.connection import SERIALIZER


class JSONJob(Job):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = SERIALIZER
        super().__init__(*args, **kwargs)

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> JSONJob:
        kwargs["serializer"] = SERIALIZER
        return super().create(*args, **kwargs)

    @classmethod
    def fetch(cls, id: str, connection: Any = None, serializer: Any = None) -> JSONJob:  # noqa: A002
        return super().fetch(id, connection=connection, serializer=SERIALIZER)


class JSONQueue(Queue):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = SERIALIZER
        super().__init__(*args, **kwargs)
