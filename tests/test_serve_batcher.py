"""Micro-batching: concurrent items share model calls, one call at a time, bounded queue."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from flipkd.serve.app import model_handlers
from flipkd.serve.batcher import BatcherClosedError, MicroBatcher, QueueFullError
from test_serve_fake import FakeMatcher


def _doubler(calls: list[int], delay_s: float = 0.0):
    def handler(items: list[int]) -> list[int]:
        calls.append(len(items))
        time.sleep(delay_s)
        return [2 * x for x in items]

    return handler


def test_concurrent_items_share_calls_and_keep_order():
    calls: list[int] = []

    async def main() -> list[list[int]]:
        batcher = MicroBatcher({"double": _doubler(calls, 0.01)}, max_batch=32, max_wait_ms=20)
        await batcher.start()
        out = await asyncio.gather(*(batcher.submit("double", [i, 100 + i]) for i in range(20)))
        await batcher.close()
        return out

    results = asyncio.run(main())
    assert results == [[2 * i, 2 * (100 + i)] for i in range(20)]
    assert sum(calls) == 40
    assert len(calls) < 20 and max(calls) <= 32


def test_max_batch_is_respected():
    calls: list[int] = []

    async def main() -> None:
        batcher = MicroBatcher({"double": _doubler(calls)}, max_batch=4, max_wait_ms=5)
        await batcher.start()
        await asyncio.gather(*(batcher.submit("double", [i]) for i in range(10)))
        await batcher.close()

    asyncio.run(main())
    assert sum(calls) == 10 and max(calls) <= 4


def test_throughput_under_concurrency_far_above_serial():
    fake = FakeMatcher(delay_s=0.03)

    async def main() -> tuple[float, float]:
        batcher = MicroBatcher(model_handlers(fake), max_batch=32, max_wait_ms=5)
        await batcher.start()
        start = time.perf_counter()
        for i in range(6):
            await batcher.submit("encode", [f"text {i}"])
        serial_qps = 6 / (time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.gather(*(batcher.submit("encode", [f"text {i}"]) for i in range(64)))
        concurrent_qps = 64 / (time.perf_counter() - start)
        await batcher.close()
        return serial_qps, concurrent_qps

    serial_qps, concurrent_qps = asyncio.run(main())
    assert concurrent_qps > 5 * serial_qps, (serial_qps, concurrent_qps)


def test_one_model_call_at_a_time_across_kinds():
    fake = FakeMatcher(delay_s=0.005)

    async def main() -> None:
        batcher = MicroBatcher(model_handlers(fake), max_batch=4, max_wait_ms=1)
        await batcher.start()
        jobs = [batcher.submit("encode", [f"q{i}"]) for i in range(8)]
        jobs += [
            batcher.submit(mode, [("a b", "a c")]) for mode in ("gen", "rep") for _ in range(4)
        ]
        await asyncio.gather(*jobs)
        await batcher.close()

    asyncio.run(main())
    assert fake.max_active == 1
    assert {kind for kind, _ in fake.calls} == {"encode", "gen", "rep"}


def test_full_queue_refuses_at_once():
    gate = threading.Event()
    fake = FakeMatcher(gate=gate)

    async def main() -> None:
        batcher = MicroBatcher(model_handlers(fake), max_batch=1, max_wait_ms=0, max_queue=2)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit("encode", ["busy"]))
        while not fake.calls:  # the worker holds the first item in the model
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(batcher.submit("encode", [f"q{i}"])) for i in range(2)]
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        with pytest.raises(QueueFullError):
            await batcher.submit("encode", ["one too many"])
        gate.set()
        assert len(await first) == 1 and len(await asyncio.gather(*queued)) == 2
        with pytest.raises(QueueFullError):  # can never fit
            await batcher.submit("encode", ["a", "b", "c"])
        await batcher.close()

    asyncio.run(main())


def test_close_drains_pending_then_refuses():
    calls: list[int] = []

    async def main() -> None:
        batcher = MicroBatcher({"double": _doubler(calls, 0.02)}, max_batch=2, max_wait_ms=0)
        await batcher.start()
        pending = [asyncio.ensure_future(batcher.submit("double", [i])) for i in range(6)]
        await asyncio.sleep(0)
        await batcher.close()
        assert [p.result() for p in pending] == [[2 * i] for i in range(6)]
        assert not batcher.running
        with pytest.raises(BatcherClosedError):
            await batcher.submit("double", [1])

    asyncio.run(main())


def test_handler_error_fails_only_its_group():
    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("model exploded")

    async def main() -> None:
        batcher = MicroBatcher(
            {"ok": _doubler([]), "bad": broken, "short": lambda items: items[:-1]},
            max_wait_ms=10,
        )
        await batcher.start()
        ok, bad, short = await asyncio.gather(
            batcher.submit("ok", [1]),
            batcher.submit("bad", [1]),
            batcher.submit("short", [1, 2]),
            return_exceptions=True,
        )
        assert ok == [2]
        assert isinstance(bad, RuntimeError) and "exploded" in str(bad)
        assert isinstance(short, RuntimeError) and "0 results for 1 items" in str(short)
        await batcher.close()

    asyncio.run(main())


def _picky(calls: list[list[int]]):
    """Doubles its items, but fails the whole call when any item is negative."""

    def handler(items: list[int]) -> list[int]:
        calls.append(list(items))
        if any(x < 0 for x in items):
            raise ValueError(f"cannot take {min(items)}")
        return [2 * x for x in items]

    return handler


def test_a_failing_batch_is_retried_item_by_item():
    calls: list[list[int]] = []
    batches: list[tuple[str, int]] = []

    async def main() -> list:
        batcher = MicroBatcher(
            {"double": _picky(calls)},
            max_wait_ms=50,
            on_batch=lambda kind, n, s: batches.append((kind, n)),
        )
        await batcher.start()
        out = await asyncio.gather(
            batcher.submit("double", [1]),
            batcher.submit("double", [2, -3]),
            batcher.submit("double", [4]),
            batcher.submit("double", [5, 6]),
            return_exceptions=True,
        )
        await batcher.close()
        return out

    one, guilty, four, five_six = asyncio.run(main())
    assert (one, four, five_six) == ([2], [8], [10, 12])
    assert isinstance(guilty, ValueError) and "cannot take -3" in str(guilty)
    assert calls[0] == [1, 2, -3, 4, 5, 6]  # one batch, which failed
    assert calls[1:] == [[1], [2], [-3], [4], [5], [6]]  # then each item alone
    assert batches == [("double", 1)] * 5  # only the calls that succeeded are observed


def test_a_failing_hook_or_batch_never_stops_the_worker():
    def hook(kind: str, n: int, seconds: float) -> None:
        raise RuntimeError("metrics broke")

    async def main() -> None:
        handlers = {"double": _doubler([]), "set": lambda items: {0}}
        batcher = MicroBatcher(handlers, max_wait_ms=1, on_batch=hook)
        await batcher.start()
        assert await asyncio.wait_for(batcher.submit("double", [1, 2]), 5) == [2, 4]
        with pytest.raises(TypeError):  # a set has a length but no order: fails in the worker
            await asyncio.wait_for(batcher.submit("set", [3]), 5)
        assert await asyncio.wait_for(batcher.submit("double", [5]), 5) == [10]
        assert batcher.running
        await batcher.close()

    asyncio.run(main())


def test_close_after_timeout_fails_the_batch_in_flight_instead_of_hanging():
    gate = threading.Event()
    fake = FakeMatcher(gate=gate)

    async def main() -> None:
        batcher = MicroBatcher(model_handlers(fake), max_batch=1, max_wait_ms=0)
        await batcher.start()
        in_flight = asyncio.ensure_future(batcher.submit("encode", ["busy"]))
        while not fake.calls:
            await asyncio.sleep(0.001)
        queued = asyncio.ensure_future(batcher.submit("encode", ["waiting"]))
        await asyncio.sleep(0.01)
        await batcher.close(timeout=0.05)
        for job in (in_flight, queued):
            with pytest.raises(BatcherClosedError):
                await asyncio.wait_for(job, 5)
        gate.set()  # let the model thread finish

    asyncio.run(main())
