"""The no-op job plain RQ runs in the throughput baseline."""


def noop() -> None:
    return None
