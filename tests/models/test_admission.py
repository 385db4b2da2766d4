"""The admission queue's rules on their own: FIFO turns, a bounded queue, refusal of what would time out."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_lightning.models.admission import Admission, Overloaded


async def hold(admission: Admission, order: list[str], name: str, release: asyncio.Event, **kwargs) -> None:
    async with admission.slot(max_tokens=kwargs.pop("max_tokens", 64), **kwargs):
        order.append(name)
        await release.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_turns_are_taken_in_arrival_order_one_slot_at_a_time():
    admission = Admission(slots=1, queue_size=4)
    order: list[str] = []
    gates = {name: asyncio.Event() for name in "abcd"}
    tasks = []
    for name in "abcd":
        tasks.append(asyncio.create_task(hold(admission, order, name, gates[name])))
        await settle()
    assert order == ["a"] and (admission.running, admission.waiting) == (1, 3)
    for name in "abcd":
        gates[name].set()
        await settle()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c", "d"] and admission.admitted == 4


async def test_a_newcomer_does_not_jump_a_waiter_that_was_just_woken():
    admission = Admission(slots=1, queue_size=4)
    order: list[str] = []
    gate = asyncio.Event()
    gate.set()
    async with admission.slot(max_tokens=64):
        order.append("first")
        second = asyncio.create_task(hold(admission, order, "second", gate))
        await settle()
    # The second is woken but has not run yet; a newcomer arrives in that instant (no yield in between).
    await hold(admission, order, "third", gate)
    await second
    assert order == ["first", "second", "third"]


async def test_a_waiter_cancelled_after_being_woken_passes_the_turn_on():
    admission = Admission(slots=1, queue_size=4)
    order: list[str] = []
    gate = asyncio.Event()
    gate.set()
    async with admission.slot(max_tokens=64):
        order.append("first")
        second = asyncio.create_task(hold(admission, order, "second", gate))
        third = asyncio.create_task(hold(admission, order, "third", gate))
        await settle()
    second.cancel()  # woken as the first left, cancelled before it ran
    await asyncio.gather(second, third, return_exceptions=True)
    assert second.cancelled()
    assert order == ["first", "third"] and (admission.running, admission.waiting) == (0, 0)


async def test_a_full_queue_refuses_with_the_expected_wait():
    admission = Admission(slots=1, queue_size=1)
    gate = asyncio.Event()
    tasks = [asyncio.create_task(hold(admission, [], n, gate)) for n in "ab"]
    await settle()
    with pytest.raises(Overloaded) as refused:
        async with admission.slot(max_tokens=64):
            pass
    assert refused.value.status == 503 and refused.value.retry_after_s >= 1 and admission.rejected == 1
    gate.set()
    await asyncio.gather(*tasks)


async def test_a_request_that_would_pass_its_deadline_in_the_queue_is_refused_at_once():
    admission = Admission(slots=1, queue_size=8)
    admission.estimate.record(seconds=10.0, completion_tokens=100)  # 10 tokens/s, answers of 100 tokens
    gate = asyncio.Event()
    running = asyncio.create_task(hold(admission, [], "long", gate, max_tokens=1000))
    await settle()
    soon = time.monotonic() + 3  # the running one needs about 10 s more
    with pytest.raises(Overloaded) as refused:
        async with admission.slot(max_tokens=100, deadline=soon):
            pass
    assert "past its timeout" in refused.value.message and refused.value.retry_after_s >= 10
    later = asyncio.create_task(hold(admission, [], "later", gate, deadline=time.monotonic() + 60))
    await settle()
    assert admission.waiting == 1  # time enough: it waits its turn
    gate.set()
    await asyncio.gather(running, later)


def test_the_estimate_follows_measured_speed_and_caps_at_max_tokens():
    admission = Admission()
    estimate = admission.estimate
    estimate.record(seconds=2.0, completion_tokens=100)
    assert estimate.tokens_per_s == 50 and estimate.answer_tokens == 100
    assert estimate.seconds(10) < estimate.seconds(100) == estimate.seconds(1000)
    estimate.record(seconds=1.0, completion_tokens=10, aborted=True)  # speed counts, length does not
    assert estimate.answer_tokens == 100 and estimate.tokens_per_s < 50
