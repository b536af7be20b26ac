"""The HTTP JSON service: ``nodedrop-rq serve``.

Built on FastAPI (an ASGI application) served by uvicorn, because:

* ASGI: one process holds many slow or idle client connections cheaply, while blocking Redis calls run
  in FastAPI's thread pool (endpoints that talk to Redis are plain ``def`` or use ``run_in_threadpool``);
* the OpenAPI document at ``/openapi.json`` is generated from the same pydantic models that shape the
  responses, so the published contract cannot drift from what the service returns;
* both are widely used and well kept, with no plugin system of our own to maintain.

``create_app(settings, connection=None)`` builds the application (tests can run it in-process);
``server.serve()`` runs it under uvicorn and, in single-server mode, supervises a worker pool.
The API process never runs a workflow: it validates, enqueues and reads state.
"""

from nodedrop_rq.api.app import create_app

__all__ = ["create_app"]
