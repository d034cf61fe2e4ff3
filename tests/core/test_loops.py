"""pqlab.core.loops: a coroutine runs on its own loop, also under a running one; raises through."""

from __future__ import annotations

import asyncio

import pytest

from pqlab.core.loops import run_in_loop_thread


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


async def _fail() -> None:
    raise KeyError("from the loop thread")


def test_returns_the_result_and_reraises():
    assert run_in_loop_thread(_answer) == 42
    with pytest.raises(KeyError, match="from the loop thread"):
        run_in_loop_thread(_fail)


def test_works_under_a_running_loop():
    async def outer() -> int:
        return run_in_loop_thread(_answer)

    assert asyncio.run(outer()) == 42
