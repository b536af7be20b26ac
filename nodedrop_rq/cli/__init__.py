"""The ``nodedrop-rq`` command line. Each submodule registers one family of commands."""

from __future__ import annotations

import os
from typing import Any

import click
from redis.exceptions import RedisError

from nodedrop_rq.cli import engine_commands, queue_commands, schedule_commands, serve_commands, workflow_commands
from nodedrop_rq.cli.common import EXIT_INTERRUPTED, EXIT_LISTEN, fail, fail_redis
from nodedrop_rq.errors import ListenFailed


class _Group(click.Group):
    """Last line of defence: what a command did not handle itself still ends in one line and an exit code
    from the README's table, never a traceback (click's own "Aborted!" says nothing either)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)
        except RedisError as exc:
            fail_redis(exc, os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
        except ListenFailed as exc:
            fail(str(exc), EXIT_LISTEN)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nodedrop-rq")
def main() -> None:
    """Run NodeDrop workflows on an RQ worker pool."""


engine_commands.register(main)
queue_commands.register(main)
serve_commands.register(main)
schedule_commands.register(main)
workflow_commands.register(main)
