"""``tb-stagnation LOGDIR``: the ranking in a shell, no TensorBoard server.

``tb-stagnation checkpoints SRC`` imports exact movement from saved
checkpoints first (:mod:`tb_stagnation.checkpoints.command`).

Reads every sample (no reservoir sampling) with the direct event-file
reader, whose parity with TensorBoard's data provider (what the plugin
reads through) is tested on every writer's log. What it could not read is
listed on stderr; it fails only when nothing was readable.
``--fail-on-stagnant`` turns it into a CI gate.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Sequence

from tb_stagnation import definitions, findings, naming, ranking, tagfilter

FIELDS = (
    "run", "tag", "layer", "role", "status", "score", "net", "samples", "first_step",
    "last_step", "source", "axis", "histogram_score", "exact_score", "floor", "threshold",
)
EXIT_STUCK, EXIT_USAGE = 1, 2
# Histograms the CLI holds before summarising the runs read so far and dropping them:
# memory follows the largest run (and the file being read), not the log directory.
HELD_HISTOGRAM_BYTES = 64 << 20


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tb-stagnation",
        description="Rank the layers in a TensorBoard log directory by how much they move. "
        "`tb-stagnation checkpoints SRC` first imports exact movement from saved checkpoints.",
    )
    p.add_argument("logdir", help="log directory holding event files (searched recursively)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--json",
        action="store_true",
        help="print the ranking JSON, the same object as the ranking route: "
        "ratio, runs, rows, layers, thresholds, findings, definitions",
    )
    fmt.add_argument("--csv", action="store_true", help="print CSV rows")
    p.add_argument("--run", action="append", help="only this run (repeatable)")
    p.add_argument("--role", action="append", choices=naming.ROLES, help="only this role (repeatable)")
    p.add_argument("--tag", help="only tags matching this regex")
    p.add_argument(
        "--ratio",
        type=float,
        default=ranking.DEFAULT_RATIO,
        help="stagnant below this fraction of the run's typical parameter score (default %(default)s)",
    )
    p.add_argument(
        "--fail-on-stagnant",
        action="store_true",
        help=f"exit 1 when any parameter tag ({', '.join(definitions.parameter_roles())}) is "
        f"{' or '.join(definitions.stuck_statuses())}",
    )
    return p


def load(logdir: str, ratio: float) -> tuple[ranking.Ranking, list[str]]:
    """Rank every sample in ``logdir``; also return what was skipped, one line each.

    Local directories are read by :mod:`tb_stagnation.eventfile` (every
    sample, fast, every skipped part reported). Other paths (``gs://``,
    ``s3://``, ...) go through :func:`load_through_tensorboard`.
    """
    if "://" in logdir:
        return load_through_tensorboard(logdir, ratio), []
    from tb_stagnation import eventfile

    data = eventfile.read_logdir(
        logdir, progress=_progress if sys.stderr.isatty() else None, summarise_past=HELD_HISTOGRAM_BYTES
    )
    skipped = [f"skipped {skip}" for skip in data.skipped]
    return ranking.rank(data.summaries(), data.exact(), ratio), skipped


def load_through_tensorboard(logdir: str, ratio: float) -> ranking.Ranking:
    """Rank every sample through TensorBoard's own loader, file-system layer and data provider.

    What the plugin reads through, told to keep every sample; it reports
    damage only in TensorBoard's own log.
    """
    # Imported here: TensorBoard's loader takes a while to import.
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider as mdp
    from tensorboard.backend.event_processing import plugin_event_accumulator as acc
    from tensorboard.backend.event_processing import plugin_event_multiplexer as mux

    from tb_stagnation import reading

    multiplexer = mux.EventMultiplexer(size_guidance=acc.STORE_EVERYTHING_SIZE_GUIDANCE)
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    reader = reading.Reader(mdp.MultiplexerDataProvider(multiplexer, logdir), downsample=10**9)
    ctx = context.RequestContext()
    return reader.rank(ctx, "", reader.histogram_tags(ctx, ""), reader.exact_tags(ctx, ""), ratio)


def _progress(done: int, total: int) -> None:
    """One self-overwriting line on a terminal while files are read."""
    end = "\n" if done == total else ""
    print(f"\rtb-stagnation: read {done}/{total} event files", end=end, file=sys.stderr, flush=True)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _table(rows: Sequence[ranking.Row]) -> str:
    header = ("#", "status", "score/step", "net", "source", "run", "tag", "role")
    body = [
        (str(i + 1), r.status, _cell(r.score), _cell(r.net), r.source, r.run, r.tag, r.role)
        for i, r in enumerate(rows)
    ]
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *body])


def _findings_text(found: Sequence[findings.Finding], runs: Sequence[str]) -> str:
    """The findings of each run, under a ``== run NAME`` line; ``no findings`` for a run without."""
    lines = []
    for run in runs:
        lines.append(f"== run {run}")
        messages = [f"  {f.kind}: {f.message}" for f in found if f.run == run]
        lines.extend(messages or ["  no findings"])
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["checkpoints"]:
        from tb_stagnation.checkpoints import command

        return command.main(argv[1:])
    args = _parser().parse_args(argv)
    if not 0 < args.ratio <= 1:
        print("tb-stagnation: --ratio must be in (0, 1]", file=sys.stderr)
        return EXIT_USAGE
    try:
        tag_filter = tagfilter.compile_tag_filter(args.tag)
    except tagfilter.TagFilterError as e:
        print(f"tb-stagnation: --tag: {e.reason}", file=sys.stderr)
        return EXIT_USAGE
    if "://" not in args.logdir and not os.path.isdir(args.logdir):
        print(f"tb-stagnation: {args.logdir}: no such directory", file=sys.stderr)
        return EXIT_USAGE
    result, skipped = load(args.logdir, args.ratio)
    if "://" not in args.logdir:
        from tb_stagnation.checkpoints import command

        skipped += command.pending(args.logdir)
    for message in skipped:
        print(f"tb-stagnation: {message}", file=sys.stderr)
    if not result.rows:
        print(f"tb-stagnation: {args.logdir}: no histograms or exact movement found", file=sys.stderr)
        return EXIT_USAGE
    rows = ranking.select(result.rows, runs=args.run, roles=args.role, tag_filter=tag_filter)
    all_runs = sorted(result.thresholds)
    try:
        if args.json:
            body = findings.ranking_json(result, rows, all_runs, only_runs=args.run)
            sys.stdout.write(json.dumps(body, indent=1, allow_nan=False))
            print()
        elif args.csv:
            writer = csv.writer(sys.stdout)
            writer.writerow(FIELDS)
            writer.writerows([[findings.json_number(getattr(r, f)) for f in FIELDS] for r in rows])
        else:
            shown = [run for run in all_runs if not args.run or run in args.run]
            print(_findings_text(findings.find(result), shown))
            print()
            print(_table(rows))
        sys.stdout.flush()
    except BrokenPipeError:  # `tb-stagnation LOGDIR | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    stuck = [r for r in rows if r.role in naming.PARAMETER_ROLES and r.status in ranking.STUCK_STATUSES]
    if args.fail_on_stagnant and stuck:
        print(f"tb-stagnation: {len(stuck)} parameter tag(s) frozen or stagnant", file=sys.stderr)
        return EXIT_STUCK
    return 0


if __name__ == "__main__":
    sys.exit(main())
