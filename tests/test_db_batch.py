"""models.db.Batch: calls made in one IOLoop iteration share one pool job, each with its own
outcome."""

from __future__ import annotations

import asyncio

import peewee
import pytest

from models.db import Batch, Runner


def double(n: int) -> int:
    if n < 0:
        raise ValueError(f"negative: {n}")
    return 2 * n


@pytest.fixture
def runner():
    pool = Runner(2, name="test-batch", database=False)
    yield pool
    pool.shutdown()


@pytest.mark.gen_test
async def test_calls_of_one_iteration_share_one_job_and_each_gets_its_result(runner):
    batch = Batch(runner, double)
    assert await asyncio.gather(*(batch(n) for n in range(10))) == [2 * n for n in range(10)]
    assert (batch.jobs, batch.items) == (1, 10)
    assert await batch(21) == 42  # a later iteration: a job of its own
    assert (batch.jobs, batch.items) == (2, 11)


@pytest.mark.gen_test
async def test_an_item_that_raises_fails_only_its_own_caller(runner):
    batch = Batch(runner, double)
    results = await asyncio.gather(batch(1), batch(-5), batch(3), return_exceptions=True)
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError) and str(results[1]) == "negative: -5"
    assert batch.jobs == 1


@pytest.mark.gen_test
async def test_a_full_batch_is_sent_at_once(runner):
    batch = Batch(runner, double, limit=2)
    assert await asyncio.gather(*(batch(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert (batch.jobs, batch.items) == (3, 5)


@pytest.mark.gen_test
async def test_a_failed_job_fails_every_caller_and_a_lost_connection_is_not_an_item(runner):
    def lose_connection(n: int) -> int:
        if n == 2:
            raise peewee.OperationalError("server closed the connection unexpectedly")
        return n

    batch = Batch(runner, lose_connection)
    results = await asyncio.gather(*(batch(n) for n in range(4)), return_exceptions=True)
    assert all(isinstance(r, peewee.OperationalError) for r in results)  # the whole job failed


@pytest.mark.gen_test
async def test_a_caller_that_went_away_does_not_disturb_the_others(runner):
    batch = Batch(runner, double)
    leaving = asyncio.ensure_future(batch(1))
    staying = asyncio.ensure_future(batch(2))
    await asyncio.sleep(0)  # both queued in this iteration
    leaving.cancel()
    assert await staying == 4
    assert leaving.cancelled() and batch.jobs == 1
