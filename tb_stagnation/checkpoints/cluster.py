"""The import on Ray: ``tb-stagnation checkpoints SRC --ray [ADDRESS]``.

Movement is independent per tensor: the model's tensors are cut into blocks
of consecutive tensors (model order) of about equal bytes, one per CPU of the
cluster, and each block is measured by a Ray actor of its own, kept for the
whole import. The import measures each new checkpoint in a window of three
(:mod:`.windows`) so that it is written as soon as it is measured; for each
window the driver calls every actor, which reads its block of the window's
checkpoints itself from where they are (a local path every node sees, or a
bucket URL) and measures it with :func:`.movement.measure`, the function the
in-process import runs. An actor keeps what later windows need of its block
(:class:`.windows.Kept`: in memory within the budget, else spilled to a
scratch file on its node) and the sums they share (:class:`.movement.Carried`),
so each checkpoint's bytes are read once in all and each pair summed once,
as in one process: a task per window would read a checkpoint once per window
it is in, three times. Only the checkpoints' listings (names, shapes,
offsets, put in the object store once) go to the actors, and only figures
come back, so no tensor passes through the driver. The driver puts the
blocks' figures together in model order and writes them, so the result
equals the in-process import exactly.

Each actor has at most :data:`AHEAD` windows in flight (the next one is
measured while the driver writes the last), each holding a CPU of the
cluster. An actor whose process dies (a node lost, a process killed) is
started again by Ray with nothing kept (``max_restarts``) and its calls run
again (``max_task_retries``; one that failed on a network error too): it
reads again what its window needs, so a failure costs a few re-read bytes
and changes no figure. Only a finished call's result is ever read, once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from tb_stagnation import storage
from tb_stagnation.checkpoints import formats, movement, windows
from tb_stagnation.checkpoints.discover import Placed

MAX_RETRIES = 3
AHEAD = 2  # windows submitted to every actor at a time: the next is read while the driver writes


class ClusterError(RuntimeError):
    """The Ray cluster cannot be joined, or lost an actor beyond its restarts; the message says what to do."""


class Progress(Protocol):
    def update(self, nbytes: int) -> None:
        """Tensor bytes read since the last call."""

    def note(self, text: str) -> None:
        """What else to show (blocks done of all)."""


class Blocks:
    """The series' windows measured by one actor per block of tensors, one window at a time.

    ``parts``: the windows, in order (:func:`.windows.windows`), each
    measured with per-unit movement from its newest checkpoint on, as the
    in-process import measures it.
    """

    def __init__(self, ray: Any, parts: Sequence[Sequence[Placed]], progress: Progress) -> None:
        self._ray, self._parts, self._progress = ray, parts, progress
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # The placed checkpoints with their readers' listings (names, offsets: no tensor), put in the
        # object store once: an actor need not list a checkpoint again (for a torch zip in a bucket,
        # its directory and pickle: many small requests).
        # Given with each call, boxed so that Ray passes the reference: an actor gets the windows once,
        # at its first call, and again at its first after a restart (constructor arguments in the
        # object store make Ray warn that a restart could find them gone).
        self._shared = [ray.put(tuple(tuple(window) for window in parts))]
        actor = ray.remote(num_cpus=1, max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)(_Block)
        self._actors = [actor.remote(names) for names in _split(parts, cpus)]
        self._calls: dict[int, list[Any]] = {}  # window -> its calls, one per actor (in block order)

    def measure(self, index: int) -> tuple[movement.Measurement, int]:
        """Window ``index`` (taken in order) measured; and the bytes the actors fetched for it."""
        for ahead in range(index, min(index + AHEAD, len(self._parts))):
            if ahead not in self._calls:
                self._calls[ahead] = [a.measure.options(retry_exceptions=[OSError]).remote(self._shared, ahead)
                                      for a in self._actors]
        calls = self._calls.pop(index)
        parts: dict[Any, movement.Measurement] = {}
        fetched = 0
        running = list(calls)
        while running:
            done, running = self._ray.wait(running, num_returns=1)
            parts[done[0]], call_fetched, read = _result(self._ray, done[0])
            fetched += call_fetched
            self._progress.update(read)
            self._progress.note(f"{len(parts)}/{len(calls)} blocks")
        return _merge([parts[call] for call in calls], self._parts[index]), fetched

    def close(self) -> None:
        """The actors ended, with what they kept (memory, scratch files)."""
        for actor in self._actors:
            self._ray.kill(actor)


@contextlib.contextmanager
def session(address: str, parts: Sequence[Sequence[Placed]], progress: Progress) -> Iterator[Blocks]:
    """The actors measuring ``parts`` (:class:`Blocks`), on Ray joined (or started, for "") for the
    whole import; stopped after if started here. ``address``: a running cluster ("auto",
    "ray://host:10001", "host:6379"), or "" to start a local Ray; a Ray already initialised in
    this process (a notebook, a test) is used as it is. Joined before anything is read or
    removed: an unreachable cluster costs nothing."""
    ray = _ray()
    started = _connect(ray, address)
    try:
        blocks = Blocks(ray, parts, progress)
        try:
            yield blocks
        finally:
            blocks.close()
    finally:
        if started:
            ray.shutdown()


def _result(ray: Any, ref: Any) -> tuple[movement.Measurement, int, int]:
    """A finished call's result; its own error as in-process, or what the cluster lost."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:  # raised by the import's own code: the same as in-process
        raise e.as_instanceof_cause() from None
    except ray.exceptions.RayError as e:  # an actor or node lost more often than the restarts allow
        raise ClusterError(f"an actor failed {MAX_RETRIES + 1} times on the cluster ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]}); nothing of this checkpoint was written") from None


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise formats.MissingExtra("the import on Ray needs ray: pip install 'tb-stagnation[ray]'") from None
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


def _split(parts: Sequence[Sequence[Placed]], cpus: int) -> list[frozenset[str]]:
    """Consecutive runs of the series' tensors (model order) of about equal bytes, one per CPU."""
    sizes: dict[str, int] = {}
    for placed in {p.step: p for window in parts for p in window}.values():
        for info in placed.reader.tensors():
            sizes[info.name] = max(sizes.get(info.name, 0), info.nbytes)
    share = math.ceil(sum(sizes.values()) / max(1, cpus))
    runs: list[list[str]] = []
    held = share
    for name, size in sizes.items():
        if held >= share:
            runs.append([])
            held = 0
        runs[-1].append(name)
        held += size
    return [frozenset(run) for run in runs]


class _Block:
    """A Ray actor: one block of tensors measured over every window of the import, in order.

    Holds a :class:`.windows.Kept` over the windows' checkpoints narrowed to
    its block, so what the next windows share of its block is read once, and
    the sums they share (:class:`.movement.Carried`), so each pair is summed
    once. Started again after a crash with nothing kept: the next window it
    measures reads its checkpoints again and sums them whole.
    """

    def __init__(self, names: frozenset[str]) -> None:
        self._names = names
        self._kept: windows.Kept | None = None  # made at the first call, from the windows it brings
        self._carried = movement.Carried()
        self._read = 0

    def _count(self, nbytes: int) -> None:
        self._read += nbytes

    def measure(self, shared: list[Any], index: int) -> tuple[movement.Measurement, int, int]:
        """Window ``index`` of its block (``shared``: the boxed reference to every window); the bytes
        fetched (storage's count) and the tensor bytes read."""
        if self._kept is None:
            mine = [[dataclasses.replace(p, reader=formats.Filtered(p.reader, lambda info: info.name in self._names))
                     for p in window] for window in _ray().get(shared[0])]
            # spilled wherever the source is: a local path on a cluster is a shared file system, not this node's
            self._kept = windows.Kept(mine, progress=self._count, spill=True)
        before, self._read = storage.fetched(), 0
        window = self._kept.wrap(index)
        measured = movement.measure(window, units_from=window[-1].step, carried=self._carried)
        return measured, storage.fetched() - before, self._read


def _merge(parts: Sequence[movement.Measurement], window: Sequence[Placed]) -> movement.Measurement:
    """The blocks' parts as one measurement, in the order the in-process import gives it.

    Every field is per parameter (a dict) or a list of parameters, and the
    parts hold disjoint parameters: each field is the parts' own put in
    the window's model order (first seen in its checkpoints' listings, as
    :func:`.movement.measure` takes them), whatever fields
    :class:`.movement.Measurement` grows. The series' order that cut the
    blocks can differ where a tensor comes or goes between checkpoints, and
    the order decides the records' order in the file.
    """
    order = {name: i for i, name in enumerate(dict.fromkeys(info.name for p in window for info in p.reader.tensors()))}
    merged = movement.Measurement(points={}, absent={}, reshaped={})
    for field in dataclasses.fields(merged):
        values = [getattr(part, field.name) for part in parts]
        if isinstance(getattr(merged, field.name), dict):
            items = sorted((item for value in values for item in value.items()), key=lambda item: order[item[0]])
            setattr(merged, field.name, dict(items))
        else:
            setattr(merged, field.name, sorted((name for value in values for name in value), key=order.__getitem__))
    return merged
