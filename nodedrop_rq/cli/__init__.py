"""The ``nodedrop-rq`` command line. Each submodule registers one family of commands."""

from __future__ import annotations

import click

from nodedrop_rq.cli import engine_commands, queue_commands, schedule_commands, serve_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nodedrop-rq")
def main() -> None:
    """Run NodeDrop workflows on an RQ worker pool."""


engine_commands.register(main)
queue_commands.register(main)
serve_commands.register(main)
schedule_commands.register(main)
