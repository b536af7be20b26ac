"""Queues on two real redis-servers: the exporter and scheduler fixtures of their own test packages."""

from tests.exporter.conftest import start_exporter  # noqa: F401 - fixture
from tests.schedules.conftest import start_scheduler  # noqa: F401 - fixture
