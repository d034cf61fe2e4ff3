"""The FastAPI app: ``/v1/infer``, ``/v1/noop``, ``/v1/stats``, ``/metrics``, ``/healthz``.

``create_app(config)`` builds the app around one ``Scheduler``; its lifespan
starts the workers and, on the way out, shuts the scheduler down (every
request still queued is answered 503). Statuses of ``/v1/infer``: 200 with
the request id and the server-side split (``queued_ms``: put to a worker's
take; ``service_ms``: the inference as measured where it ran; ``server_ms``:
the handler, from its start to its reply, so ``server_ms - queued_ms -
service_ms`` is what the queue's operations, the hand-offs and the handler
cost); 503 with ``Retry-After`` for a full level or a service shutting down;
504 for a request that expired in the queue; 422 naming the field for
malformed input. ``/v1/noop`` parses the same body and replies at once: the
same app without the queue, the box's ceiling. ``/v1/stats?window_s=S`` gives the
event-loop lag of the last S seconds only (a measurement's own span).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pqlab.core.task import Priority, next_seq
from pqlab.service.requests import InferBody
from pqlab.service.scheduler import Scheduler, ServiceCollector, ServiceConfig

pc = time.perf_counter_ns
CLIENT_GONE = 499  # nginx's "client closed request": never sent, the client is gone


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1e3


def create_app(config: ServiceConfig) -> FastAPI:
    """The service's app; ``ServiceError`` (from ``config.check``) if it cannot run."""
    registry = CollectorRegistry()
    scheduler = Scheduler(config, registry)
    registry.register(ServiceCollector(scheduler))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await scheduler.start()
        yield
        await scheduler.shutdown()

    app = FastAPI(title="pqlab reference scheduler", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.scheduler = scheduler

    @app.post("/v1/infer")
    async def infer(body: InferBody, request: Request) -> Response:
        start = pc()
        reply = await scheduler.infer(body.priority, _seconds(body.timeout_ms),
                                      _seconds(body.work_ms), request.receive)
        if reply is None:
            return Response(status_code=CLIENT_GONE)
        status, content, headers = reply
        return JSONResponse({**content, "server_ms": (pc() - start) / 1e6}, status, headers)

    @app.post("/v1/noop")
    async def noop(body: InferBody) -> Response:
        start = pc()
        return JSONResponse({"id": f"n{next_seq()}", "priority": Priority(body.priority).name,
                             "server_ms": (pc() - start) / 1e6})

    @app.get("/v1/stats")
    async def stats(window_s: float | None = Query(default=None, gt=0)) -> Response:
        return JSONResponse(scheduler.stats(window_s))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> Response:
        if scheduler.admitting:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "shutting down"}, 503)

    return app
