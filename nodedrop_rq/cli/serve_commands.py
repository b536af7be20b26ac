"""``nodedrop-rq serve``: the HTTP JSON service (see :mod:`nodedrop_rq.api`)."""

from __future__ import annotations

import logging
import sys

import click

from nodedrop_rq.cli.common import load_settings


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
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run(settings, host or settings.api_host, port or settings.api_port,
                 settings.worker_concurrency if workers is None else workers))
