"""The dotted paths stored inside every RQ job (the job function and its failure callback); they live
in nodedrop_rq.rq_integration.jobs."""

from nodedrop_rq.rq_integration.jobs import on_execution_failure, run_execution  # noqa: F401
