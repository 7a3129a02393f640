"""models.db.Batch: calls made in one IOLoop iteration share one pool job, each with its own
outcome."""

from __future__ import annotations

import asyncio
import threading

import peewee
import pytest

from models.db import Batch, Runner


def each(fn):
    """A Batch function running fn on each argument, keeping each outcome; a lost connection
    fails the whole job (as services.auth.AuthService.check_sessions lets it)."""
    def many(args):
        out = []
        for arg in args:
            try:
                out.append((True, fn(arg)))
            except (peewee.OperationalError, peewee.InterfaceError):
                raise
            except Exception as exc:
                out.append((False, exc))
        return out
    return many


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
    batch = Batch(runner, each(double))
    assert await asyncio.gather(*(batch(n) for n in range(10))) == [2 * n for n in range(10)]
    assert (batch.jobs, batch.items) == (1, 10)
    assert await batch(21) == 42  # a later iteration: a job of its own
    assert (batch.jobs, batch.items) == (2, 11)


@pytest.mark.gen_test
async def test_an_item_that_raises_fails_only_its_own_caller(runner):
    batch = Batch(runner, each(double))
    results = await asyncio.gather(batch(1), batch(-5), batch(3), return_exceptions=True)
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError) and str(results[1]) == "negative: -5"
    assert batch.jobs == 1


@pytest.mark.gen_test
async def test_a_full_batch_is_sent_at_once(runner):
    batch = Batch(runner, each(double), limit=2)
    assert await asyncio.gather(*(batch(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert (batch.jobs, batch.items) == (3, 5)


@pytest.mark.gen_test
async def test_a_failed_job_fails_every_caller_and_a_lost_connection_is_not_an_item(runner):
    def lose_connection(n: int) -> int:
        if n == 2:
            raise peewee.OperationalError("server closed the connection unexpectedly")
        return n

    batch = Batch(runner, each(lose_connection))
    results = await asyncio.gather(*(batch(n) for n in range(4)), return_exceptions=True)
    assert all(isinstance(r, peewee.OperationalError) for r in results)  # the whole job failed


@pytest.mark.gen_test
async def test_a_caller_that_went_away_does_not_disturb_the_others(runner):
    batch = Batch(runner, each(double))
    leaving = asyncio.ensure_future(batch(1))
    staying = asyncio.ensure_future(batch(2))
    await asyncio.sleep(0)  # both queued in this iteration
    leaving.cancel()
    assert await staying == 4
    assert leaving.cancelled() and batch.jobs == 1


def _held(first: int):
    """A Batch function that holds the job whose first argument is `first` until released;
    it records each job's arguments."""
    gate, jobs = threading.Event(), []

    def many(args: list[int]) -> list[tuple[bool, int]]:
        jobs.append(list(args))
        if args[0] == first:
            gate.wait(5)
        return [(True, 2 * n) for n in args]

    return gate, jobs, many


async def _until(condition) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in 5 s")


@pytest.mark.gen_test
async def test_calls_made_while_a_job_runs_go_together_in_the_next_job(runner):
    """Group commit: with one job in flight, the calls of five later iterations wait for it
    and then share one job; each caller gets its own result, none lost or repeated."""
    gate, jobs, many = _held(first=0)
    batch = Batch(runner, many)
    first = asyncio.ensure_future(batch(0))
    await _until(lambda: jobs)  # the first job is running (held)
    later = []
    for n in range(1, 6):  # one call per iteration
        later.append(asyncio.ensure_future(batch(n)))
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert jobs == [[0]]  # nothing else started meanwhile
    gate.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [2, 4, 6, 8, 10]
    assert jobs == [[0], [1, 2, 3, 4, 5]]
    assert (batch.jobs, batch.items) == (2, 6)


@pytest.mark.gen_test
async def test_queued_calls_past_the_limit_take_further_jobs_and_in_flight_bounds_them(runner):
    """Calls queued behind a running job go in jobs of at most `limit`; with in_flight=2 a
    second job runs beside a held one."""
    gate, jobs, many = _held(first=0)
    batch = Batch(runner, many, limit=2)
    first = asyncio.ensure_future(batch(0))
    await _until(lambda: jobs)
    later = [asyncio.ensure_future(batch(n)) for n in range(1, 6)]
    await asyncio.sleep(0.05)
    assert jobs == [[0]]
    gate.set()
    assert [await first, *await asyncio.gather(*later)] == [0, 2, 4, 6, 8, 10]
    assert jobs == [[0], [1, 2], [3, 4], [5]]

    gate, jobs, many = _held(first=10)
    beside = Batch(runner, many, in_flight=2)
    held = asyncio.ensure_future(beside(10))
    await _until(lambda: jobs)
    assert await asyncio.wait_for(beside(11), 5) == 22  # the second slot, while 10 is held
    gate.set()
    assert await held == 20 and jobs == [[10], [11]]
