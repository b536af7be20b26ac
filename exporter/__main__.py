"""``nodedrop-exporter`` / ``python -m exporter``: Prometheus metrics for nodedrop-rq."""

from __future__ import annotations

import logging
import signal
import sys

import click

from nodedrop_rq.connection import describe_redis_url
from nodedrop_rq.errors import ListenFailed
from nodedrop_rq.settings import SettingsError, check_redis_url, get_settings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", help="Address to listen on (default NODEDROP_EXPORTER_HOST, 0.0.0.0).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default NODEDROP_EXPORTER_PORT, 9727).")
@click.option("--redis-url", help="Redis to read (default REDIS_URL).")
def main(host: str | None, port: int | None, redis_url: str | None) -> None:
    """Serve /metrics and /health for Prometheus."""
    from exporter.server import serve

    try:
        settings = get_settings()
        if redis_url:
            settings = settings.with_overrides(redis_url=check_redis_url(redis_url, "--redis-url"))
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SIGTERM from the container runtime: leave serve_forever cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.getLogger("exporter").info("reading %s", describe_redis_url(settings.redis_url))
    try:
        serve(settings, host or settings.exporter_host, settings.exporter_port if port is None else port)
    except ListenFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(5)  # the README's exit code for "cannot listen"
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
