"""Engines run the per-source work and give results back in the order of the work items.

* ``InlineEngine``: one pipeline in this process (``workers=1``).
* ``LocalEngine``: a pool of worker processes (spawned, not forked), each with its own
  pipeline built once; Ctrl-C stops them. Workers report progress through a queue.
* ``RayEngine``: the same per-source function as Ray tasks, on a running cluster
  (``address``), on the instance this process already started, or on a new local one.

Every engine is a context manager; ``run(items, on_event)`` yields one
:class:`~edge_fer.analyze.worker.SourceResult` per item, in item order, whatever order the
workers finish in. ``on_event(kind, index, value)``: ``("open", i, frame_count)`` and
``("frames", i, n)`` as workers read.
"""

from __future__ import annotations

import logging
import os
import queue as queue_module
import signal
import socket
from collections import deque
from dataclasses import replace
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from ..errors import OptionsError, WorkerError
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


def _quiet(kind: str, index: int, value: int) -> None:
    pass


class InlineEngine:
    """One pipeline in the calling process."""

    def __init__(self, pipeline_options) -> None:
        self.pipeline_options = pipeline_options
        self._analyzer: SourceAnalyzer | None = None

    def __enter__(self) -> "InlineEngine":
        self._analyzer = SourceAnalyzer(self.pipeline_options)
        return self

    def run(self, items: list[WorkItem], on_event: Event = _quiet) -> Iterator[SourceResult]:
        for item in items:
            yield self._analyzer.analyze(item, on_event)

    def __exit__(self, *exc) -> None:
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
    the parent raises WorkerError (:meth:`LocalEngine.run`), one message instead of a
    multiprocessing traceback from every worker."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # what spawn itself checks
        raise SystemExit(1)


def _init_worker(pipeline_options, events, ready) -> None:
    global _worker_analyzer, _worker_events
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the pool
    _die_with_parent()
    for name in THREAD_ENV:
        os.environ.setdefault(name, "1")
    _worker_events = events
    _worker_analyzer = SourceAnalyzer(pipeline_options)
    with ready.get_lock():  # shared memory: seen by the parent at once, even if this worker dies next
        ready.value += 1


def _report(kind: str, index: int, value: int) -> None:
    _worker_events.put((kind, index, value))


def _pool_analyze(item: WorkItem) -> SourceResult:
    return _worker_analyzer.analyze(item, _report)


class LocalEngine:
    """``workers`` processes, each with its own pipeline (its thread settings come from the
    pipeline options: one classifier and one OpenCV thread by default, so N workers use N cores)."""

    def __init__(self, pipeline_options, workers: int, labels: tuple[str, ...],
                 task: Callable[[WorkItem], SourceResult] = _pool_analyze) -> None:
        self.pipeline_options = pipeline_options
        self.workers = workers
        self.labels = labels
        self.task = task  # runs in a worker: a module-level function (picklable by name)
        self._executor: ProcessPoolExecutor | None = None
        self._events = None

    def __enter__(self) -> "LocalEngine":
        import multiprocessing

        leave_if_spawning()
        context = multiprocessing.get_context("spawn")  # no inherited threads or OpenCV state
        self._events = context.Queue()
        self._context = context
        return self

    def _start(self) -> ProcessPoolExecutor:
        self._ready = self._context.Value("i", 0)  # workers of this pool that finished starting
        self._executor = ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=_init_worker,
                                             initargs=(self.pipeline_options, self._events, self._ready))
        return self._executor

    def _check_started(self) -> None:
        """The pool broke: WorkerError if no worker of it ever finished starting (a crash while
        reading a source is not that, and is retried instead)."""
        if self._ready.value == 0:
            raise WorkerError(
                f"the {self.workers} analyze worker processes exited while starting, before reading any source: "
                "a script that calls edge_fer.analyze with workers > 1 must call it under "
                "`if __name__ == \"__main__\":` (workers are spawned and run the main script again), "
                "or pass workers=1") from None

    def _drain(self, on_event: Event) -> None:
        while True:
            try:
                on_event(*self._events.get_nowait())
            except queue_module.Empty:
                return

    def run(self, items: list[WorkItem], on_event: Event = _quiet) -> Iterator[SourceResult]:
        self._start()
        pending = deque(items)
        in_flight: deque = deque()  # (item, future or None: to retry alone), in item order

        def top_up() -> None:
            running = sum(not f.done() for _, f in in_flight)
            while (pending and running < self.workers * AHEAD_PER_WORKER
                   and len(in_flight) < self.workers * BUFFERED_PER_WORKER):
                try:
                    future = self._executor.submit(self.task, pending[0])
                except BrokenProcessPool:  # seen when the head's result is collected
                    return
                in_flight.append((pending.popleft(), future))
                running += 1

        while pending or in_flight:
            suspects = any(f is None for _, f in in_flight)  # after a crash: one source at a time
            if not suspects:
                top_up()
            item, future = in_flight[0]
            if future is None:
                future = self._executor.submit(self.task, item)
                in_flight[0] = (item, future)
            while not wait([future], timeout=0.1).done:
                self._drain(on_event)
                if not suspects:
                    top_up()
            self._drain(on_event)
            try:
                result = future.result()
            except BrokenProcessPool:
                self._check_started()
                if not suspects:
                    self._recover(in_flight)
                    continue
                # It ran alone and its worker died again: this source is the cause.
                log.warning("a worker process died reading %s; restarting the pool", item.source)
                self._restart()
                result = SourceResult(item, self.labels, error="a worker process died while reading this "
                                      "source (a crash in a decoder, or out of memory)")
            in_flight.popleft()
            yield result

    def _recover(self, in_flight: deque) -> None:
        """A worker died and took the pool with it: start a new one. The sources that were in flight
        and not finished are retried one at a time, so the one that kills its worker fails alone
        and the others complete."""
        log.warning("a worker process died; restarting the pool and retrying its sources one at a time")
        self._restart()
        for position, (item, future) in enumerate(list(in_flight)):
            if not (future.done() and not future.cancelled() and future.exception() is None):
                in_flight[position] = (item, None)

    def _restart(self) -> None:
        self._stop(wait_for_workers=False)
        self._start()

    def _stop(self, wait_for_workers: bool) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if not wait_for_workers:
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, exc_type, *exc) -> None:
        try:
            self._stop(wait_for_workers=exc_type is None)
        finally:
            if self._events is not None:
                self._events.close()
                self._events = None


# Ray ----------------------------------------------------------------------------------------------
_ray_analyzers: dict = {}


def uses_bundled_model(pipeline_options) -> bool:
    from ..classifier import DEFAULT_MODEL

    return Path(pipeline_options.classifier.model_path).resolve() == DEFAULT_MODEL.resolve()


def with_local_bundled_model(pipeline_options):
    """The options with the bundled model's path as installed on this node (on a cluster,
    edge-fer lives at another path on each node); other model paths must exist everywhere."""
    from ..classifier import DEFAULT_MODEL

    return replace(pipeline_options, classifier=replace(pipeline_options.classifier, model_path=DEFAULT_MODEL))


def ray_analyze(item: WorkItem, pipeline_options, bundled_model: bool = False) -> SourceResult:
    """A Ray task: the same per-source work, with one pipeline per Ray worker process."""
    if bundled_model:
        pipeline_options = with_local_bundled_model(pipeline_options)
    analyzer = _ray_analyzers.get(pipeline_options)
    if analyzer is None:
        for name in THREAD_ENV:
            os.environ.setdefault(name, "1")
        analyzer = _ray_analyzers[pipeline_options] = SourceAnalyzer(pipeline_options)
    return analyzer.analyze(item)


def import_ray():
    try:
        import ray
    except ImportError:
        raise OptionsError("--engine ray needs the ray package: pip install 'edge-fer[cluster]'") from None
    return ray


def parse_ray_address(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; None for None or ``auto``."""
    if not address or address == "auto":
        return None
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise OptionsError(f"--ray-address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """OptionsError within ``timeout_s`` when ``host:port`` (or ``ray://host:port``) does not
    accept a connection: Ray itself retries an unreachable cluster for minutes."""
    host_port = parse_ray_address(address)
    if host_port is None:
        return
    try:
        socket.create_connection(host_port, timeout=timeout_s).close()
    except OSError as exc:
        raise OptionsError(f"cannot reach a Ray cluster at {address}: "
                           f"{exc.strerror or type(exc).__name__}") from None


class RayEngine:
    """Ray tasks (one CPU each). ``address``: a cluster's ``host:port`` or ``auto``; None uses
    the instance this process already runs, else $RAY_ADDRESS, else starts a local one.
    ``workers``: tasks in flight (default: the cluster's CPUs)."""

    def __init__(self, pipeline_options, address: str | None, workers: int | None,
                 labels: tuple[str, ...]) -> None:
        self.pipeline_options = pipeline_options
        self.address = address
        self.workers = workers
        self.labels = labels
        self._started = False

    def __enter__(self) -> "RayEngine":
        self.ray = ray = import_ray()
        check_reachable(self.address)
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                         include_dashboard=False if self.address is None else None)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise OptionsError(f"cannot reach a Ray cluster at {self.address or 'a new local instance'}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            self._started = True
        return self

    def run(self, items: list[WorkItem], on_event: Event = _quiet) -> Iterator[SourceResult]:
        ray = self.ray
        task = ray.remote(num_cpus=1)(ray_analyze)
        options_ref = ray.put(self.pipeline_options)
        bundled = uses_bundled_model(self.pipeline_options)
        window = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending = deque(items)
        in_flight: deque = deque()

        def top_up() -> None:
            refs = [r for _, r in in_flight]
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
            running = len(refs) - len(done)
            while (pending and running < window * AHEAD_PER_WORKER
                   and len(in_flight) < window * BUFFERED_PER_WORKER):
                item = pending.popleft()
                in_flight.append((item, task.remote(item, options_ref, bundled)))
                running += 1

        while pending or in_flight:
            top_up()
            item, ref = in_flight.popleft()
            while not ray.wait([ref], timeout=0.5)[0]:
                top_up()
            try:
                result = ray.get(ref)
            except Exception as exc:  # the task's process died, or Ray lost it
                result = SourceResult(item, self.labels, error=f"ray task failed: {type(exc).__name__}")
            on_event("open", item.index, max(result.frames, 1))
            on_event("frames", item.index, result.frames)
            yield result

    def __exit__(self, *exc) -> None:
        if self._started:
            self.ray.shutdown()
