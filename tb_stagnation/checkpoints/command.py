"""``tb-stagnation checkpoints SRC``: exact movement from saved checkpoints, into the run's logs.

Finds every checkpoint under SRC (:mod:`.discover`; a local path or a URL
read through :mod:`tb_stagnation.storage`), orders each run's checkpoints by training
step, measures every tensor between consecutive checkpoints (:mod:`.movement`,
in this process, or as Ray tasks with ``--ray``: :mod:`.cluster`) and writes
the result beside the run's own events (:mod:`.imported`; into the bucket
when the run is in one). Re-running imports only checkpoints that are new.
Exit status 0 when everything found was imported or was already, 2 when
nothing could be (no checkpoint, a single one, an ambiguous run directory,
a reader not installed, a URL or cluster out of reach), with the reason and
what to do on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from tb_stagnation import records, storage
from tb_stagnation.checkpoints import adapters, cluster, discover, formats, imported, movement, windows
from tb_stagnation.writers import units

EXIT_OK, EXIT_USAGE = 0, 2


class ImportFailed(Exception):
    """Nothing of a series could be imported; the message says why and what to do."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _import_all(args)
    except (storage.StorageError, cluster.ClusterError) as e:
        return _fail(str(e))


def _import_all(args: argparse.Namespace) -> int:
    if not storage.isdir(args.src):
        return _fail(f"{args.src}: no such directory")
    found = discover.discover(args.src)
    if not found:
        return _fail(f"{args.src}: no checkpoints found. Looked for {discover.LOOKED_FOR}.")
    if args.logdir is not None:
        if len(found) > 1:
            return _fail(
                f"{args.src} holds checkpoints of {len(found)} runs; --logdir names one run directory, "
                "so point SRC at one of them:\n" + "\n".join(f"  {s.directory}" for s in found)
            )
        found[0].target, found[0].candidates = args.logdir, []
    for series in found:
        if series.target is None:
            return _fail(
                f"the checkpoints in {series.directory} could belong to several runs; choose one with "
                "--logdir:\n" + "\n".join(f"  {c}" for c in series.candidates)
            )
    targets = [s.target for s in found]
    clash = next((t for t in targets if targets.count(t) > 1), None)
    if clash is not None:
        return _fail(
            f"checkpoints of several runs would go into {clash}:\n"
            + "\n".join(f"  {s.directory}" for s in found if s.target == clash)
            + "\nimport them one at a time with --logdir"
        )
    status = EXIT_USAGE
    for series in found:
        try:
            # a run in a bucket: written in a local copy of its import files, uploaded as each checkpoint is
            with storage.staged(series.target, imported.owned) as run_dir:
                lines = import_series(dataclasses.replace(series, target=run_dir.path), rebuild=args.rebuild,
                                      bar=not args.quiet and sys.stderr.isatty(), ray=args.ray, sync=run_dir.sync)
            for line in lines:
                _say(line.replace(run_dir.path, series.target))
            status = EXIT_OK
        except (ImportFailed, formats.MissingExtra) as e:
            _say(str(e))
    return status


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tb-stagnation checkpoints",
        description="Measure exact per-layer movement between the checkpoints under SRC and write it "
        "beside the run's TensorBoard events, for the Stagnation tab and `tb-stagnation LOGDIR`.",
    )
    p.add_argument("src", metavar="SRC", help="directory searched (recursively) for checkpoints: a local path "
                   "or an fsspec URL (s3://bucket/run, gs://bucket/run; endpoint and credentials as the "
                   "store's own tools take them, e.g. AWS_ENDPOINT_URL)")
    p.add_argument("--logdir", help="the run directory to write into (default: the one holding the "
                   "training's own event files beside the checkpoints, else SRC; in the bucket too)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="measure on Ray, one actor per block of tensors reading its own from SRC: on the cluster at "
                   "ADDRESS ('auto', 'ray://host:10001'), or on a Ray started for this import when none is given")
    p.add_argument("--rebuild", action="store_true", help="drop what earlier imports wrote and import all again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def import_series(
    series: discover.Series, rebuild: bool = False, bar: bool = False, ray: str | None = None,
    sync: Callable[[], None] | None = None,
) -> list[str]:
    """Import the checkpoints of ``series`` not imported yet; the lines to report.

    ``ray``: measure as Ray tasks on the cluster at that address ("" for a
    Ray of its own), else in this process. ``sync``: called whenever a file
    written is durable (:class:`.imported.Appender`), to publish the run
    directory's local copy (:class:`tb_stagnation.storage.Staged`).
    """
    fetched_before = storage.fetched()
    placement = discover.place(series)
    lines = list(placement.notes)
    if rebuild:
        lines += [f"removed {path}" for path in imported.remove(series.target)]
    done = imported.imported(series.target)
    if done.axis is not None and done.axis != placement.axis:
        raise ImportFailed(
            f"{series.target} holds checkpoint movement whose steps count {done.axis}s, but the "
            f"checkpoints in {series.directory} now count {placement.axis}s; re-import with --rebuild"
        )
    placed = placement.placed
    if len(placed) < 2 and not done.steps:
        found = "no readable checkpoint" if not placed else f"only one checkpoint ({placed[0].checkpoint.label})"
        raise ImportFailed(
            "\n".join(lines + [f"{series.directory}: {found}; movement needs two. To keep more: "
                               f"{discover.KEEP_MORE[series.family]}"])
        )
    newest = max(done.steps, default=None)
    late = [p for p in placed if p.step not in done.steps and newest is not None and p.step < newest]
    lines += [f"{p.checkpoint.label}: older than the newest imported step ({newest}), skipped; "
              "--rebuild imports it" for p in late]
    new = [p for p in placed if p.step not in done.steps and p not in late]
    if not new:
        return lines + [f"{series.directory}: up to date ({len(done.steps)} checkpoints imported in {series.target})"]
    start = placed.index(new[0])
    window = placed[max(0, start - 2):]  # two before the first new one give its ratio and cosine
    if start == 0 and done.steps:
        lines.append(f"{new[0].checkpoint.label}: no earlier checkpoint on disk to compare with")
    parts = [adapters.separate(part) for part in windows.windows(placed, new)]  # each new one, two before it
    began = time.monotonic()
    remote, tensors = 0, set()
    reshaped: dict[str, list[int]] = {}
    no_unit_axis: dict[str, None] = {}
    spill = storage.is_url(series.directory)  # a bucket is fetched once; local pages are read again
    # Ray's actors keep or spill wherever SRC is: each checkpoint read once (cluster.Blocks)
    total = windows.planned([part for part, _ in parts], spill=spill or ray is not None)
    total += sum(adapters.nbytes(adapted) for _, adapted in parts)
    with (_progress(total, f"{len(new)} checkpoints", bar) as shown,
          (cluster.session(ray, [part for part, _ in parts], shown) if ray is not None
           else contextlib.nullcontext()) as blocks,
          windows.Kept([part for part, _ in parts], progress=shown.update, spill=spill) as kept,
          imported.Appender(series.target, placement.axis, done, sync=sync) as out):
        carried = movement.Carried()  # each window's sums for the next: every pair summed once
        for i, (p, (part, adapted)) in enumerate(zip(new, parts)):  # written one by one: a kill costs the one in progress
            if ray is None:
                measured = movement.measure(kept.wrap(i), units_from=p.step, carried=carried)
            else:
                measured, fetched_by_tasks = blocks.measure(i)
                remote += fetched_by_tasks
            measured.points.update(adapters.measure(adapted))
            points = {param: q for param, series_points in measured.points.items() for s, q in series_points if s == p.step}
            shapes = {info.name: formats.shape(info, p.checkpoint.format) for info in p.reader.tensors()}
            out.add(p.step, points, _units(measured, out.done, part), measured.unit_quantiles, shapes)
            tensors.update(points)
            for param, at in measured.reshaped.items():
                if p.step in at:
                    reshaped.setdefault(param, []).append(p.step)
            no_unit_axis.update(dict.fromkeys(measured.no_unit_axis))
    fetched = storage.fetched() - fetched_before + remote
    # what the bytes fetched are counted against: each checkpoint's tensors once, however often read
    tensor_bytes = windows.planned([part for part, _ in parts]) + adapters.nbytes(
        list({a.step: a for _, adapted in parts for a in adapted}.values()))
    axis = {records.STEP: "steps", records.EPOCH: "epochs", records.ORDER: "checkpoint order (step unknown)"}
    lines.append(
        f"imported {len(new)} checkpoint(s) of {series.directory} ({axis[placement.axis]} "
        f"{new[0].step}-{new[-1].step}) into {out.path}: {len(tensors)} tensors, "
        f"{total / 1e6:.1f} MB of tensors read in {time.monotonic() - began:.1f} s"
    )
    if storage.is_url(series.directory):  # local files are mapped, not fetched: nothing to count
        lines.append(f"fetched {fetched:,} bytes for {tensor_bytes:,} bytes of tensors "
                     f"({100 * (fetched - tensor_bytes) / max(tensor_bytes, 1):+.1f}%: headers, indexes, each tensor once)")
    adapted = parts[-1][1]
    if adapted:
        lines.append(f"{len(adapted[-1].adapters)} LoRA adapters measured on their update (lora_alpha / r) B A, "
                     f"one series each ({adapted[-1].adapters[0].param}); their lora_A and lora_B not ranked apart")
    if placement.axis == records.ORDER:
        lines.append(f"the real training step of these checkpoints is unknown ({discover.AXIS_SOURCES[series.family]}); "
                     "ratios are per checkpoint interval")
    listings = [{info.name for info in q.reader.tensors()} for q in adapters.separate(window)[0]]
    names = dict.fromkeys(name for listing in listings for name in listing)
    lines += [f"{param}: missing from {count} of {len(window)} checkpoints; measured where present"
              for param in names if (count := sum(param not in listing for listing in listings))]
    if no_unit_axis:
        lines.append(f"{_names(list(no_unit_axis))}: {units.NO_AXIS}")
    lines += [f"{param}: shape changed at step(s) {', '.join(map(str, at))}; not compared across the change"
              for param, at in reshaped.items()]
    return lines


def _units(
    measured: movement.Measurement, done: imported.Imported, window: Sequence[discover.Placed]
) -> dict[str, tuple[int, np.ndarray, int, str]]:
    """Per-unit movement over every import so far: this one's pairs added to the newest unit record.

    A tensor whose unit count changed since (a reshaped layer) starts again from this import.
    """
    listing = {info.name: info for p in window for info in p.reader.tensors()}
    fmt = window[-1].checkpoint.format
    out = {}
    for param, moved in measured.units.items():
        pairs = measured.unit_pairs[param]
        before = done.units.get(param)
        if before is not None and before[1].shape == moved.shape:
            pairs, moved = pairs + before[0], moved + before[1]
        info = listing[param]
        out[param] = (pairs, moved, formats.unit_axis(info, fmt), formats.unit_noun(info))
    return out


def _names(names: Sequence[str], most: int = 4) -> str:
    """``a``; ``a and b``; ``a, b, c and 5 more``."""
    if len(names) > most:
        return f"{', '.join(names[: most - 1])} and {len(names) - most + 1} more"
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def pending(logdir: str) -> list[str]:
    """One line per series under ``logdir`` with checkpoints not imported yet (no file opened)."""
    lines = []
    for series in discover.discover(logdir):
        if series.target is None:
            continue
        done = len(imported.imported(series.target).steps)
        found = len([c for c in series.checkpoints if not c.name.startswith("last")])  # last.ckpt copies one
        if found > done:
            lines.append(
                f"{found} checkpoint(s) in {series.directory}, {done} imported: "
                f"`tb-stagnation checkpoints {series.directory}` measures their exact movement"
            )
    return lines


class _progress:
    """A tqdm bar over the bytes read, on a terminal; a no-op elsewhere or without tqdm.

    :meth:`update` advances it by bytes, :meth:`note` says what else moves (Ray's blocks done in the window).
    """

    def __init__(self, total: int, description: str, shown: bool) -> None:
        self._bar = None
        if shown:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=description, unit="B", unit_scale=True, file=sys.stderr)

    def __enter__(self) -> _progress:
        return self

    def update(self, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.update(nbytes)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _say(line: str) -> None:
    print(f"tb-stagnation: {line}", file=sys.stderr)


def _fail(message: str) -> int:
    _say(message)
    return EXIT_USAGE
