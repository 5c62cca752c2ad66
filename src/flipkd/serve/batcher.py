"""Dynamic micro-batching: many concurrent requests, one model call per batch.

Requests put single items (a text to embed, a pair to score) on a bounded asyncio
queue and await their futures. One worker takes the first waiting item, keeps
collecting until it has ``max_batch`` items or ``max_wait_ms`` has passed, groups
the batch by kind, and runs each group's handler in a one-thread executor, so
the model sees one call at a time and the event loop never blocks.

A full queue refuses new work at once (:class:`QueueFullError`, the API answers
503 with Retry-After) instead of letting latency pile up. :meth:`MicroBatcher.close`
stops intake and finishes everything already queued.

One request must never fail another's: when a batch's handler raises, each of
its items is run again alone, so only the item that still fails gets the error.
Nothing that goes wrong in a batch (a handler, the metrics hook) stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[list[Any]], Sequence[Any]]
BatchHook = Callable[[str, int, float], None]


class QueueFullError(Exception):
    """The queue cannot take the request's items now; retry later."""


class BatcherClosedError(Exception):
    """The batcher is shutting down and takes no new work."""


@dataclass
class _Item:
    kind: str
    payload: Any
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collects items from concurrent callers into batches for ``handlers``.

    Args:
        handlers: Kind name -> function from a list of payloads to a same-length
            sequence of results (called from the worker thread).
        max_batch: Most items per batch.
        max_wait_ms: How long the first item of a batch waits for company.
        max_queue: Most items waiting; beyond it :meth:`submit` raises QueueFullError.
        on_batch: Called with (kind, batch size, seconds) after each handler call.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        on_batch: BatchHook | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait_ms >= 0")
        self.handlers = dict(handlers)
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._call_started: float | None = None  # monotonic start of the model call running now

    @property
    def depth(self) -> int:
        """Items waiting (not counting the batch being computed)."""
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def busy_seconds(self) -> float:
        """How long the model call running now has been running (0.0 when idle)."""
        started = self._call_started
        return 0.0 if started is None else time.monotonic() - started

    @property
    def running(self) -> bool:
        """Whether the worker runs and new work is accepted."""
        return self._worker is not None and not self._worker.done() and not self._closing

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flipkd-model")
        self._closing = False
        self._worker = asyncio.create_task(self._run(), name="flipkd-batcher")

    async def submit(self, kind: str, payloads: Sequence[Any]) -> list[Any]:
        """Queue ``payloads`` of ``kind`` and return their results in order.

        Raises:
            QueueFullError: not all payloads fit in the queue now.
            BatcherClosedError: the batcher is not running.
        """
        if self._queue is None or not self.running:
            raise BatcherClosedError("the server is shutting down")
        if kind not in self.handlers:
            raise KeyError(f"no handler for {kind!r}")
        if not payloads:
            return []
        if len(payloads) > self.max_queue - self._queue.qsize():
            raise QueueFullError(f"queue full ({self._queue.qsize()}/{self.max_queue} items)")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in payloads]
        for payload, future in zip(payloads, futures, strict=True):
            self._queue.put_nowait(_Item(kind, payload, future))
        return list(await asyncio.gather(*futures))

    async def close(self, timeout: float | None = 30.0) -> None:
        """Stop intake, finish every queued item (up to ``timeout`` s), stop the worker."""
        if self._queue is None or self._worker is None:
            return
        self._closing = True
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("batcher: %d items not finished after %ss", self.depth, timeout)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        while not self._queue.empty():  # only after a timeout
            _resolve([self._queue.get_nowait()], error=BatcherClosedError("server shut down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._worker = None
        log.info("batcher drained")

    async def _collect(self) -> list[_Item]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = await self._collect()
            try:
                await self._process(batch)
            except asyncio.CancelledError:
                _resolve(batch, error=BatcherClosedError("server shut down"))
                raise
            except Exception as err:  # a bug here must not stop the worker
                log.exception("batcher: a batch of %d failed", len(batch))
                _resolve(batch, error=err)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _process(self, batch: list[_Item]) -> None:
        groups: dict[str, list[_Item]] = {}
        for item in batch:
            if not item.future.done():  # the caller went away: skip its work
                groups.setdefault(item.kind, []).append(item)
        for kind, items in groups.items():
            await self._run_group(kind, items)

    async def _run_group(self, kind: str, items: list[_Item], *, alone: bool = False) -> None:
        """Run one handler call; if it fails, run each item alone so only the guilty one errs."""
        try:
            results = await self._call(kind, items)
        except Exception as err:
            if len(items) == 1:
                log.error("%s item failed%s", kind, " alone" if alone else "", exc_info=err)
                _resolve(items, error=err)
                return
            log.warning("%s batch of %d failed (%r); retrying each alone", kind, len(items), err)
            for item in items:
                if not item.future.done():
                    await self._run_group(kind, [item], alone=True)
            return
        _resolve(items, results=results)

    async def _call(self, kind: str, items: list[_Item]) -> Sequence[Any]:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        payloads = [i.payload for i in items]
        self._call_started = time.monotonic()
        try:
            results = await loop.run_in_executor(
                self._executor, _call, self.handlers[kind], payloads
            )
        finally:
            self._call_started = None
        if self.on_batch is not None:
            try:
                self.on_batch(kind, len(items), time.perf_counter() - start)
            except Exception:  # metrics must never fail a request
                log.exception("batcher: the on_batch hook failed")
        return results


def _call(handler: Handler, payloads: list[Any]) -> Sequence[Any]:
    results = handler(payloads)
    if len(results) != len(payloads):
        raise RuntimeError(f"handler returned {len(results)} results for {len(payloads)} items")
    return results


def _resolve(
    items: list[_Item], results: Sequence[Any] | None = None, error: Exception | None = None
) -> None:
    for n, item in enumerate(items):
        if item.future.done():
            continue
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(results[n])
