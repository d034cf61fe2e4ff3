"""The decision record's "How to adopt" snippet: the chosen queue in a FastAPI service.

The record prints this file with ``QUEUE`` and ``POLICY`` set from the run
(``pqlab.decide.adoption``); tests/decide/test_adopt_example.py executes the printed text
against a test client, so the snippet cannot rot. Inference is a placeholder
coroutine: in ModelMora a worker coroutine awaits a worker process (POC 1).
"""

import asyncio
import itertools
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pqlab.queues import async_face, get_spec
from pqlab.queues.asyncqueue import QueueShutDown
from pqlab.queues.policy import QueuePolicy, Rejected
from pqlab.queues.prometheus import instrument

QUEUE = "AsyncBucketQueue"
POLICY = {"default": {"max_queue_size": 25, "default_timeout_s": 1.0}}
WORKERS = 4
SEQ = itertools.count()  # FIFO within a level: (priority, seq), never the payload


@dataclass(order=True)
class Request:
    priority: int  # CRITICAL=1 .. LOW=4
    seq: int
    body: Any = field(compare=False, default=None)
    reply: asyncio.Future = field(compare=False, default=None)


async def run_inference(body: Any) -> dict:
    await asyncio.sleep(0.01)  # ModelMora: await the model's worker process here
    return {"echo": body}


async def worker(requests) -> None:
    while True:
        try:
            request = await requests.get()
        except QueueShutDown:
            return
        if not request.reply.done():
            request.reply.set_result(await run_inference(request.body))


@asynccontextmanager
async def lifespan(app: FastAPI):
    spec = get_spec(QUEUE)
    queue = spec.factory(policy=QueuePolicy.from_mapping(POLICY))
    app.state.registry = CollectorRegistry()
    app.state.queue = instrument(queue, name="requests", registry=app.state.registry)
    requests = async_face(spec, app.state.queue)
    workers = [asyncio.create_task(worker(requests)) for _ in range(WORKERS)]
    yield
    queue.shutdown()  # puts now raise; the workers serve what is queued, then stop
    await asyncio.gather(*workers)


app = FastAPI(lifespan=lifespan)


@app.post("/v1/infer")
async def infer(priority: int, body: dict) -> dict:
    queue = app.state.queue
    request = Request(priority, next(SEQ), body, asyncio.get_running_loop().create_future())
    try:
        await async_face(get_spec(QUEUE), queue).put(request)
    except (Rejected, QueueShutDown) as refused:  # a full level or shutting down: at once
        raise HTTPException(503, str(refused) or "shutting down",
                            headers={"Retry-After": "1"}) from None
    try:
        return await asyncio.wait_for(request.reply, timeout_s(priority))
    except asyncio.CancelledError:  # the client left: take its request out of the queue
        queue.cancel(request)
        raise
    except TimeoutError:  # the queue expired it (or it is still running): 504
        queue.cancel(request)
        raise HTTPException(504, "request timed out") from None


@app.get("/metrics")
def metrics() -> Response:  # depth, wait and outcome counters per priority level
    return Response(generate_latest(app.state.registry), media_type=CONTENT_TYPE_LATEST)


def timeout_s(priority: int) -> float | None:
    """The level's timeout (the queue expires the request then), None for none."""
    return QueuePolicy.from_mapping(POLICY).for_level(priority).default_timeout_s or None
