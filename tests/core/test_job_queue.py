"""The work queue's two halves: a service is given the function that sends a job when it is built, before the
job's handler (often the service's own method) is registered."""

import asyncio

import pytest

from agent_lightning.core.queue import JobQueue


async def test_a_sender_made_before_its_handler_delivers_once_the_handler_is_registered(settings):
    queue = JobQueue(settings)  # in memory: ALP_QUEUE_URL is empty in tests
    send = queue.sender("test.job")
    delivered: asyncio.Queue[str] = asyncio.Queue()
    jobs: set[asyncio.Task] = set()
    queue.register("test.job", delivered.put, jobs)
    await queue.start()
    try:
        await send("row-1")
        assert await asyncio.wait_for(delivered.get(), 5) == "row-1"
    finally:
        await queue.stop()


async def test_a_sender_without_a_handler_says_which_job_it_lacks(settings):
    send = JobQueue(settings).sender("test.unregistered")
    with pytest.raises(RuntimeError, match=r"test\.unregistered"):
        await send("row-1")
