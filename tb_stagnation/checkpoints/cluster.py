"""The import as Ray tasks: ``tb-stagnation checkpoints SRC --ray [ADDRESS]``.

Movement is independent per tensor: each task takes a run of consecutive
tensors (in model order) over every checkpoint of the window, reads them
itself from where the checkpoints are (a local path every node sees, or a
bucket URL) and measures them with :func:`.movement.measure`, the function
the in-process import runs; only the checkpoints' listings (names, shapes,
offsets, put in the object store once) and the task's names go to a task,
and only figures come back, so no tensor passes through the driver. The driver
puts the parts together in model order and writes them once, so the result
equals the in-process import exactly.

At most :data:`IN_FLIGHT_PER_CPU` tasks per CPU of the cluster are in
flight (``ray.wait``), enough to keep every worker busy while bounding what
waits in the object store; a task whose worker dies (a node lost, a process
killed) is run again by Ray (``max_retries``), and one that failed on a
network error too. A retried task's figures replace nothing: only a
finished task's result is ever read, once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from tb_stagnation import storage
from tb_stagnation.checkpoints import formats, movement
from tb_stagnation.checkpoints.discover import Placed
from tb_stagnation.checkpoints.formats import TensorInfo

MAX_RETRIES = 3
TASKS_PER_CPU = 4  # tasks made per CPU of the cluster: a slow task holds up little of the import
IN_FLIGHT_PER_CPU = 2


class ClusterError(RuntimeError):
    """The Ray cluster cannot be joined, or lost a task beyond its retries; the message says what to do."""


class Progress(Protocol):
    def update(self, nbytes: int) -> None:
        """Tensor bytes measured since the last call."""

    def note(self, text: str) -> None:
        """What else to show (tasks done of all)."""


@dataclasses.dataclass(frozen=True)
class _Task:
    """What one task is told besides the checkpoints (shared by every task): which tensors are its own."""

    names: frozenset[str]
    units_from: int | None
    nbytes: int  # of its tensors over every checkpoint: its share of the progress bar


def measure(
    window: Sequence[Placed], progress: Progress, units_from: int | None = None
) -> tuple[movement.Measurement, int]:
    """:func:`.movement.measure` of ``window`` as Ray tasks, within :func:`session`; and the bytes
    the tasks fetched."""
    ray = _ray()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    tasks = _split(window, units_from, cpus)
    remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=[OSError])(_run)
    # The placed checkpoints with their readers' listings (names, offsets: no tensor), put in the
    # object store once: a task need not list a checkpoint again (for a torch zip in a bucket, its
    # directory and pickle: many small requests).
    shared = ray.put(tuple(window))
    parts: dict[int, movement.Measurement] = {}
    fetched = 0
    running: dict[Any, int] = {}
    queue = list(enumerate(tasks))
    while queue or running:
        while queue and len(running) < max(1, IN_FLIGHT_PER_CPU * cpus):
            index, task = queue.pop(0)
            running[remote.remote(shared, task)] = index
        done, _ = ray.wait(list(running), num_returns=1)
        for ref in done:
            index = running.pop(ref)
            parts[index], task_fetched = _result(ray, ref)
            fetched += task_fetched
            progress.update(tasks[index].nbytes)
            progress.note(f"{len(parts)}/{len(tasks)} tasks")
    return _merge([parts[i] for i in range(len(tasks))]), fetched


@contextlib.contextmanager
def session(address: str) -> Iterator[None]:
    """Ray joined (or started, for "") for a whole import, so that its checkpoints, measured one
    window at a time (:func:`tb_stagnation.checkpoints.command.import_series`), share one; stopped after
    if started here. ``address``: a running cluster ("auto", "ray://host:10001", "host:6379"), or
    "" to start a local Ray; a Ray already initialised in this process (a notebook, a test) is
    used as it is. Joined before anything is read or removed: an unreachable cluster costs nothing."""
    ray = _ray()
    started = _connect(ray, address)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _result(ray: Any, ref: Any) -> tuple[movement.Measurement, int]:
    """A finished task's result; its own error as in-process, or what the cluster lost."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:  # raised by the import's own code: the same as in-process
        raise e.as_instanceof_cause() from None
    except ray.exceptions.RayError as e:  # a worker or node lost more often than the retries allow
        raise ClusterError(f"a task failed {MAX_RETRIES + 1} times on the cluster ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]}); nothing of this checkpoint was written") from None


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise formats.MissingExtra("the import as Ray tasks needs ray: pip install 'tb-stagnation[ray]'") from None
    return ray


def _connect(ray: Any, address: str) -> bool:
    """Join ``address`` (or start a local Ray for ""); whether this call started one to stop after."""
    if ray.is_initialized():
        return False
    import logging

    try:
        _answers(address)
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=True)
    except (OSError, TimeoutError, RuntimeError, ValueError) as e:  # ConnectionError is an OSError
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise ClusterError(
            f"cannot reach {where} ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
            "start one with `ray start --head`, give its address ('auto' on a node of it, "
            "'ray://HOST:10001' from outside), or leave --ray's ADDRESS out to start one for this import"
        ) from None
    return True


def _answers(address: str, timeout: float = 5.0) -> None:
    """Raise ``OSError`` unless something listens at a ``host:port`` cluster address.

    ``ray.init`` retries a silent GCS address for about 20 minutes (20 tries
    of 60 s); "auto" and "ray://" fail on their own within 30 s.
    """
    host, colon, port = address.rpartition(":")
    if "://" in address or not colon or not port.isdigit():
        return
    import socket

    socket.create_connection((host, int(port)), timeout=timeout).close()


def _split(window: Sequence[Placed], units_from: int | None, cpus: int) -> list[_Task]:
    """Consecutive runs of tensors (model order) of about equal bytes, :data:`TASKS_PER_CPU` per CPU."""
    sizes: dict[str, int] = {}
    for placed in window:
        for info in placed.reader.tensors():
            sizes[info.name] = sizes.get(info.name, 0) + info.nbytes
    share = math.ceil(sum(sizes.values()) / max(1, cpus * TASKS_PER_CPU))
    runs: list[list[str]] = []
    held = share
    for name, size in sizes.items():
        if held >= share:
            runs.append([])
            held = 0
        runs[-1].append(name)
        held += size
    return [_Task(frozenset(run), units_from, sum(sizes[n] for n in run)) for run in runs]


def _run(window: tuple[Placed, ...], task: _Task) -> tuple[movement.Measurement, int]:
    """One task, in a Ray worker: read and measure its own tensors from the checkpoints; what it fetched."""
    before = storage.fetched()
    placed = [Placed(p.checkpoint, p.step, _Only(p.reader, task.names)) for p in window]
    return movement.measure(placed, units_from=task.units_from), storage.fetched() - before


class _Only:
    """A checkpoint reader that lists only the task's own tensors."""

    def __init__(self, reader: formats.CheckpointReader, names: frozenset[str]) -> None:
        self._reader, self._names = reader, names

    def tensors(self) -> list[TensorInfo]:
        return [info for info in self._reader.tensors() if info.name in self._names]

    def recorded_step(self) -> int | None:
        return self._reader.recorded_step()

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        return self._reader.read(tensors)


def _merge(parts: Sequence[movement.Measurement]) -> movement.Measurement:
    """The tasks' parts as one measurement, in model order as the in-process import gives it.

    Every field is per parameter (a dict) or a list of parameters, and the
    parts hold disjoint parameters: each field is the parts' own, one after
    the other, whatever fields :class:`.movement.Measurement` grows.
    """
    merged = movement.Measurement(points={}, absent={}, reshaped={})
    for part in parts:
        for field in dataclasses.fields(part):
            mine, theirs = getattr(merged, field.name), getattr(part, field.name)
            if isinstance(mine, dict):
                mine.update(theirs)
            else:
                mine.extend(theirs)
    return merged
