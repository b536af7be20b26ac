"""``nodedrop-rq serve``: the HTTP JSON service (see :mod:`nodedrop_rq.api`)."""

from __future__ import annotations

import logging
import sys

import click

from nodedrop_rq.cli.common import EXIT_LISTEN, check_redis, fail, load_functions, load_settings
from nodedrop_rq.errors import ListenFailed


def register(group: click.Group) -> None:
    group.add_command(serve)


@click.command()
@click.option("--host", help="Address to listen on (default: NODEDROP_API_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: NODEDROP_API_PORT, 8080).")
@click.option("--workers", type=click.IntRange(min=0),
              help="Also run a pool of this many ExecutionWorker processes, restarted if it dies "
                   "(single-server mode; default: EXECUTION_WORKER_CONCURRENCY). 0: API only.")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API: submit, follow, cancel and requeue executions; /api/health; /openapi.json."""
    from nodedrop_rq.api.server import serve as run

    settings = load_settings()
    # Before anything starts: the validator needs the function registry, and the pool child would
    # otherwise crash-loop on a missing module.
    load_functions(settings)
    check_redis(settings)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = run(settings, host or settings.api_host, port or settings.api_port,
                   settings.worker_concurrency if workers is None else workers)
    except ListenFailed as exc:
        fail(str(exc), EXIT_LISTEN)
    sys.exit(code)
