"""nodedrop-rq: NodeDrop-compatible workflow executions on an RQ worker pool."""
