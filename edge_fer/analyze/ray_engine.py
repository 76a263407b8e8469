"""``RayEngine``: the per-source work as Ray tasks, on a running cluster (``address``), on the
instance this process already started, or on a new local one. Results come back in item order
through the same scheduler as the local pool (:func:`~edge_fer.analyze.engines.in_order`).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from ..errors import OptionsError
from .engines import Engine, Event, in_order, one_thread_per_worker, quiet
from .items import WorkItem
from .worker import SourceAnalyzer, SourceResult

#: How long one wait for the oldest task lasts before more tasks are queued.
POLL_S = 0.5

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
        one_thread_per_worker()
        analyzer = _ray_analyzers[pipeline_options] = SourceAnalyzer(pipeline_options)
    return analyzer.analyze(item)


def import_ray():
    try:
        import ray
    except ImportError:
        raise OptionsError("AnalyzeOptions.engine='ray': expected the ray package installed "
                           "(pip install 'edge-fer[cluster]')") from None
    return ray


def parse_ray_address(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; None for None or ``auto``."""
    if not address or address == "auto":
        return None
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise OptionsError(f"AnalyzeOptions.ray_address={address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
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
        raise OptionsError(f"AnalyzeOptions.ray_address={address!r}: cannot reach a Ray cluster "
                           f"({exc.strerror or type(exc).__name__})") from None


class RayEngine(Engine):
    """Ray tasks (one CPU each). ``address``: a cluster's ``host:port`` or ``auto``; None uses
    the instance this process already runs, else $RAY_ADDRESS, else starts a local one.
    ``workers``: tasks in flight (default: the cluster's CPUs)."""

    def __init__(self, pipeline_options, address: str | None, workers: int | None,
                 labels: tuple[str, ...]) -> None:
        self.pipeline_options = pipeline_options
        self.address = address
        self.workers = workers
        self.labels = labels
        self.width = workers or 1  # the cluster's CPUs when workers is None: set by map_in_order
        self._started = False

    def start(self) -> None:
        self.ray = ray = import_ray()
        check_reachable(self.address)
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                         include_dashboard=False if self.address is None else None)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = "" if self.address else " at a new local instance"
                raise OptionsError(f"AnalyzeOptions.ray_address={self.address!r}: cannot reach a Ray cluster{where} "
                                   f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
            self._started = True

    def map_in_order(self, items: list[WorkItem], on_event: Event = quiet) -> Iterator[SourceResult]:
        ray = self.ray
        self._task = ray.remote(num_cpus=1)(ray_analyze)
        self._options_ref = ray.put(self.pipeline_options)
        self._bundled = uses_bundled_model(self.pipeline_options)
        self.width = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        yield from in_order(self, items, on_event)

    # Workers, for in_order
    def submit(self, item: WorkItem):
        return self._task.remote(item, self._options_ref, self._bundled)

    def unfinished(self, handles: list) -> int:
        if not handles:
            return 0
        done, _ = self.ray.wait(handles, num_returns=len(handles), timeout=0)
        return len(handles) - len(done)

    def wait(self, handle, on_event: Event) -> bool:
        return bool(self.ray.wait([handle], timeout=POLL_S)[0])

    def result(self, item: WorkItem, handle, on_event: Event) -> SourceResult:
        """The task's result; a task that failed (its process died, or Ray lost it) is a failure
        row, never WorkerLost: Ray replaces dead worker processes itself."""
        try:
            result = self.ray.get(handle)
        except Exception as exc:
            result = SourceResult(item, self.labels, error=f"ray task failed: {type(exc).__name__}")
        on_event("open", item.index, max(result.frames, 1))
        on_event("frames", item.index, result.frames)
        return result

    def kept(self, handle) -> bool:
        return bool(self.ray.wait([handle], timeout=0)[0])

    def restart(self) -> None:
        """Nothing to do: ``result`` never raises WorkerLost."""

    def close(self, wait: bool = True) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False
