"""Engines run the per-source work and give results back in the order of the work items.

* ``InlineEngine``: one pipeline in this process (``workers=1``).
* ``LocalEngine``: worker processes (spawned, not forked), each with its own pipeline built
  once; Ctrl-C stops them. Workers report progress through a queue.
* ``RayEngine``: the same per-source function as Ray tasks (:mod:`.ray_engine`).

Every engine is an :class:`Engine`: ``with engine:`` starts and stops its workers, and
``engine.map_in_order(items, on_event)`` yields one
:class:`~edge_fer.analyze.worker.SourceResult` per item, in item order, whatever order the
workers finish in. ``on_event(kind, index, value)``: ``("open", i, frame_count)`` and
``("frames", i, n)`` as workers read. The local and Ray engines share one scheduler,
:func:`in_order`, which drives them through :class:`Workers`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue as queue_module
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, wait as wait_for_futures
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext
from typing import Any, Callable, Iterator, Protocol

from ..errors import WorkerError
from .items import WorkItem
from .worker import SourceAnalyzer, SourceResult

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Sources queued or running per worker (so none idles between files).
AHEAD_PER_WORKER = 2
#: Finished results held per worker while an earlier, longer source is still running (results
#: are handed out in source order); past this the workers wait.
BUFFERED_PER_WORKER = 32
#: Thread pools that native libraries size from the environment: one thread per worker.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

Event = Callable[[str, int, int], None]


def quiet(kind: str, index: int, value: int) -> None:
    """An ``on_event`` that ignores every event."""


def one_thread_per_worker() -> None:
    """In a worker process: native thread pools default to one thread (unless set already)."""
    for name in THREAD_ENV:
        os.environ.setdefault(name, "1")


class Engine(Protocol):
    """Runs the per-source work. ``with engine:`` calls ``start`` and then ``close``: it waits
    for the workers after a clean exit and stops them at once after an exception (Ctrl-C)."""

    def start(self) -> None:
        """Start the workers (or what they need)."""
        ...

    def map_in_order(self, items: list[WorkItem], on_event: Event = quiet) -> Iterator[SourceResult]:
        """One result per item, in item order."""
        ...

    def close(self, wait: bool = True) -> None:
        """Stop the workers: after their current task, or at once (``wait=False``)."""
        ...

    def __enter__(self) -> "Engine":
        self.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(wait=exc_type is None)


# the in-order scheduler ---------------------------------------------------------------------------
class WorkerLost(Exception):
    """The workers died with a source in flight; ``Workers.restart`` gives new ones."""


class Workers(Protocol):
    """What :func:`in_order` drives. A handle is what ``submit`` returns (a Future, a Ray
    ObjectRef); ``width``: sources worked on at once; ``labels``: the model's classes."""

    width: int
    labels: tuple[str, ...]

    def submit(self, item: WorkItem) -> Any:
        """Start ``item``'s task; WorkerLost when the workers broke."""
        ...

    def unfinished(self, handles: list) -> int:
        """How many of ``handles`` are still queued or running."""
        ...

    def wait(self, handle, on_event: Event) -> bool:
        """Wait a moment for ``handle``, pass on progress events; True once it finished."""
        ...

    def result(self, item: WorkItem, handle, on_event: Event) -> SourceResult:
        """The finished task's result; WorkerLost when its worker died."""
        ...

    def kept(self, handle) -> bool:
        """After WorkerLost: True if ``handle`` finished with a result before."""
        ...

    def restart(self) -> None:
        """After WorkerLost: new workers."""
        ...


def _top_up(workers: Workers, pending: deque, in_flight: deque) -> None:
    running = workers.unfinished([handle for _, handle in in_flight])
    while (pending and running < workers.width * AHEAD_PER_WORKER
           and len(in_flight) < workers.width * BUFFERED_PER_WORKER):
        try:
            handle = workers.submit(pending[0])
        except WorkerLost:  # seen when the head's result is collected
            return
        in_flight.append((pending.popleft(), handle))
        running += 1


def in_order(workers: Workers, items: list[WorkItem], on_event: Event = quiet) -> Iterator[SourceResult]:
    """Run ``items`` on ``workers``, a bounded window ahead, and yield their results in item order.

    When workers die (WorkerLost), they are restarted and the sources that were in flight and not
    finished are retried one at a time: the one that kills its worker fails alone, the others
    complete."""
    pending = deque(items)
    in_flight: deque = deque()  # (item, handle or None: to retry alone), in item order
    while pending or in_flight:
        alone = any(handle is None for _, handle in in_flight)  # after a crash: one source at a time
        if not alone:
            _top_up(workers, pending, in_flight)
        item, handle = in_flight[0]
        if handle is None:
            handle = workers.submit(item)
            in_flight[0] = (item, handle)
        while not workers.wait(handle, on_event):
            if not alone:
                _top_up(workers, pending, in_flight)
        try:
            result = workers.result(item, handle, on_event)
        except WorkerLost:
            if not alone:
                log.warning("a worker process died; restarting the pool and retrying its sources one at a time")
                workers.restart()
                for position, (other, other_handle) in enumerate(list(in_flight)):
                    if not workers.kept(other_handle):
                        in_flight[position] = (other, None)
                continue
            # It ran alone and its worker died again: this source is the cause.
            log.warning("a worker process died reading %s; restarting the pool", item.source)
            workers.restart()
            result = SourceResult(item, workers.labels, error="a worker process died while reading this "
                                  "source (a crash in a decoder, or out of memory)")
        in_flight.popleft()
        yield result


# in this process --------------------------------------------------------------------------------
class InlineEngine(Engine):
    """One pipeline in the calling process."""

    def __init__(self, pipeline_options) -> None:
        self.pipeline_options = pipeline_options
        self._analyzer: SourceAnalyzer | None = None

    def start(self) -> None:
        self._analyzer = SourceAnalyzer(self.pipeline_options)

    def map_in_order(self, items: list[WorkItem], on_event: Event = quiet) -> Iterator[SourceResult]:
        for item in items:
            yield self._analyzer.analyze(item, on_event)

    def close(self, wait: bool = True) -> None:
        if self._analyzer is not None:
            self._analyzer.close()
            self._analyzer = None


# local process pool -----------------------------------------------------------------------------
_worker_analyzer: SourceAnalyzer | None = None
_worker_events = None


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when its parent dies (killed by a scheduler, OOM)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux/glibc: workers end at their next task instead
        pass


def leave_if_spawning() -> None:
    """In a worker process that is still starting (spawn runs the parent's main script again,
    as ``__mp_main__``), an analysis must not start another pool: that is a script calling
    ``analyze`` without an ``if __name__ == "__main__":`` guard. The worker exits quietly and
    the parent raises WorkerError (:meth:`LocalEngine.result`), one message instead of a
    multiprocessing traceback from every worker."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):  # what spawn itself checks
        raise SystemExit(1)


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (if not running) with SIGHUP and SIGQUIT blocked:
    it ignores SIGINT and SIGTERM itself, but a terminal that goes away sends SIGHUP to the whole
    process group, and a tracker killed by it is restarted by the next call and then prints a
    KeyError traceback for every semaphore it never saw. Blocked, they stay pending in it."""
    from multiprocessing import resource_tracker

    blocked = [getattr(signal, name) for name in ("SIGHUP", "SIGQUIT") if hasattr(signal, name)]
    if not blocked or not hasattr(signal, "pthread_sigmask"):  # Windows: no such signals, no tracker
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _init_worker(pipeline_options, events, ready) -> None:
    global _worker_analyzer, _worker_events
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the pool
    for name in ("SIGHUP", "SIGQUIT"):  # sent to the whole terminal: the parent stops, then ends the pool
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    _die_with_parent()
    one_thread_per_worker()
    _worker_events = events
    _worker_analyzer = SourceAnalyzer(pipeline_options)
    with ready.get_lock():  # shared memory: seen by the parent at once, even if this worker dies next
        ready.value += 1


def _report(kind: str, index: int, value: int) -> None:
    _worker_events.put((kind, index, value))


def _pool_analyze(item: WorkItem) -> SourceResult:
    return _worker_analyzer.analyze(item, _report)


class _SpawnKeepingProcesses(SpawnContext):
    """The spawn context (no inherited threads or OpenCV state), keeping every process it
    creates: the pool's workers, which ``LocalEngine.close(wait=False)`` terminates."""

    def __init__(self) -> None:
        super().__init__()
        self.processes: list = []

    def Process(self, *args, **kwargs):
        process = super().Process(*args, **kwargs)
        self.processes.append(process)
        return process


class LocalEngine(Engine):
    """``workers`` processes, each with its own pipeline (its thread settings come from the
    pipeline options: one classifier and one OpenCV thread by default, so N workers use N cores).
    ``task`` runs in a worker: a module-level function (picklable by name)."""

    def __init__(self, pipeline_options, workers: int, labels: tuple[str, ...],
                 task: Callable[[WorkItem], SourceResult] = _pool_analyze) -> None:
        self.pipeline_options = pipeline_options
        self.width = workers
        self.labels = labels
        self.task = task
        self._executor: ProcessPoolExecutor | None = None
        self._context: _SpawnKeepingProcesses | None = None
        self._events = None

    def start(self) -> None:
        leave_if_spawning()
        start_resource_tracker()
        self._events = multiprocessing.get_context("spawn").Queue()

    def map_in_order(self, items: list[WorkItem], on_event: Event = quiet) -> Iterator[SourceResult]:
        self._start_pool()
        yield from in_order(self, items, on_event)

    def _start_pool(self) -> None:
        self._context = _SpawnKeepingProcesses()
        self._ready = self._context.Value("i", 0)  # workers of this pool that finished starting
        self._executor = ProcessPoolExecutor(self.width, mp_context=self._context, initializer=_init_worker,
                                             initargs=(self.pipeline_options, self._events, self._ready))

    # Workers, for in_order
    def submit(self, item: WorkItem) -> Future:
        try:
            return self._executor.submit(self.task, item)
        except BrokenProcessPool:
            raise WorkerLost from None

    def unfinished(self, handles: list) -> int:
        return sum(not future.done() for future in handles)

    def wait(self, handle: Future, on_event: Event) -> bool:
        finished = bool(wait_for_futures([handle], timeout=0.1).done)
        while True:
            try:
                on_event(*self._events.get_nowait())
            except queue_module.Empty:
                return finished

    def result(self, item: WorkItem, handle: Future, on_event: Event) -> SourceResult:
        try:
            return handle.result()
        except BrokenProcessPool:
            self._check_started()
            raise WorkerLost from None

    def kept(self, handle: Future) -> bool:
        return handle.done() and not handle.cancelled() and handle.exception() is None

    def restart(self) -> None:
        self._stop(wait_for_workers=False)
        self._start_pool()

    def _check_started(self) -> None:
        """The pool broke: WorkerError if no worker of it ever finished starting (a crash while
        reading a source is not that, and is retried instead)."""
        if self._ready.value == 0:
            raise WorkerError(
                f"the {self.width} analyze worker processes exited while starting, before reading any source: "
                "a script that calls edge_fer.analyze with workers > 1 must call it under "
                "`if __name__ == \"__main__\":` (workers are spawned and run the main script again), "
                "or pass workers=1") from None

    def _stop(self, wait_for_workers: bool) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if not wait_for_workers:
            for process in self._context.processes:
                if process.is_alive():
                    process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)

    def close(self, wait: bool = True) -> None:
        try:
            self._stop(wait_for_workers=wait)
        finally:
            if self._events is not None:
                self._events.close()
                self._events = None
