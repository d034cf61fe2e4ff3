"""The adoption example (pqlab/decide/adopt_example.py), run as the record prints it: the
snippet under "How to adopt" serves, counts and shuts down, and refuses a full level."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _snippet_namespace(text: str, tmp_path: Path) -> dict:
    import runpy
    code = text.split("## How to adopt", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "service.py"
    path.write_text(code)
    return runpy.run_path(str(path))


def test_the_printed_snippet_serves_counts_and_shuts_down(records, tmp_path):
    from fastapi.testclient import TestClient
    text, _, _ = records["e2e"]
    ns = _snippet_namespace(text, tmp_path)
    with TestClient(ns["app"]) as client:
        reply = client.post("/v1/infer", params={"priority": 1}, json={"prompt": "hi"})
        assert reply.status_code == 200 and reply.json() == {"echo": {"prompt": "hi"}}
        metrics = client.get("/metrics").text
    assert re.search(r'pqlab_queue_requests_total\{outcome="served",priority="CRITICAL",'
                     r'queue="requests"\} 1\.0', metrics)
    assert ns["app"].state.queue.qsize() == 0


def test_the_printed_snippet_refuses_a_full_level_at_once(records, tmp_path):
    import asyncio

    import httpx
    text, _, run = records["plain"]
    ns = _snippet_namespace(text, tmp_path)
    release = asyncio.Event()

    async def blocked(body):  # every worker holds its request until released
        await release.wait()
        return {"echo": body}

    ns["worker"].__globals__["run_inference"] = blocked
    app = ns["app"]
    limit = int(ns["POLICY"]["levels"]["4"]["max_queue_size"])

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                sends = [asyncio.create_task(client.post("/v1/infer", params={"priority": 4},
                                                         json={"i": i}))
                         for i in range(ns["WORKERS"] + limit + 3)]
                await asyncio.sleep(0.2)
                release.set()
                return [r.status_code for r in await asyncio.gather(*sends)]

    codes = asyncio.run(scenario())
    # The level holds `limit`; the workers may take up to WORKERS before the last puts run.
    assert set(codes) == {200, 503}
    assert 3 <= codes.count(503) <= 3 + ns["WORKERS"] and codes.count(200) >= limit
