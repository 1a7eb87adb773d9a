"""``tb-stagnation LOGDIR``: the ranking in a shell, no TensorBoard server.

``tb-stagnation checkpoints SRC`` imports exact movement from saved
checkpoints first (:mod:`tb_stagnation.checkpoints.command`).

A thin face on :func:`tb_stagnation.analyse` (every sample, no reservoir)
and :mod:`tb_stagnation.wire` (the JSON and the columns). What could not be
read is listed on stderr; it fails only when nothing was readable.
``--fail-on-stagnant`` turns it into a CI gate.

The text output is for a person at a terminal: parameter rows only, as the
tab shows them first (gradients and activations change with the data, so
among parameters they only push the rows that matter apart), long lines
fitted to the terminal. ``--json`` and ``--csv`` are for programs: every
role unless ``--role`` narrows them, names whole.

The ranking pipeline (:mod:`tb_stagnation.api`, the engine, TensorBoard's
data provider, :mod:`tb_stagnation.wire`) is imported where a ranking is
made, not at the top: ``tb-stagnation checkpoints`` starts without it
(half a second of a checkpoint import's start otherwise).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tb_stagnation import storage, tagfilter
from tb_stagnation.checkpoints import command
from tb_stagnation.verdict import vocabulary

if TYPE_CHECKING:
    from tb_stagnation.verdict import findings, ranking

PROG = "tb-stagnation"
EXIT_STUCK, EXIT_USAGE = 1, 2
# Line width when stdout is not a terminal (a pipe, a file) and COLUMNS is unset.
PIPED_WIDTH = 100
# The narrowest the tag and run columns get when a table row is fitted to the terminal.
LEAST_TAG, LEAST_RUN = 16, 8
# Runs named in the "no such run" message before the rest is counted.
RUNS_NAMED = 20


def _parser() -> argparse.ArgumentParser:
    from tb_stagnation import api

    p = argparse.ArgumentParser(
        prog=PROG,
        description="Rank the layers in a TensorBoard log directory by how much they move.",
        epilog=f"`{PROG} checkpoints SRC` first imports exact movement from the checkpoints saved "
        f"under SRC (`{PROG} checkpoints --help`). To rank a log directory named checkpoints, write ./checkpoints.",
    )
    p.add_argument("logdir", metavar="LOGDIR", help="log directory holding event files (searched recursively)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--json",
        action="store_true",
        help="print the ranking JSON, the same object as the ranking route: ratio, runs, findings, "
        "rows, layers, thresholds, thinned, definitions (one line; --indent N to indent)",
    )
    fmt.add_argument("--csv", action="store_true", help="print CSV rows")
    p.add_argument("--indent", type=int, metavar="N", help="with --json: indent N spaces per level")
    p.add_argument(
        "--run",
        action="append",
        help=f"only this run (repeatable); a log directory that is itself a run is named by the "
        f"directory's name, or {api.ROOT_RUN!r} as TensorBoard names it",
    )
    roles = p.add_mutually_exclusive_group()
    roles.add_argument(
        "--role",
        action="append",
        choices=vocabulary.ROLES,
        metavar="ROLE",
        help=f"only this role (repeatable): {', '.join(vocabulary.ROLES)}; the table shows parameters "
        f"({', '.join(vocabulary.parameter_roles())}) by default, --json and --csv every role",
    )
    roles.add_argument(
        "--all-roles", action="store_true", help="every role in the table, gradients and activations too"
    )
    p.add_argument("--tag", metavar="REGEX", help="only tags matching this regex")
    p.add_argument(
        "--ratio",
        type=float,
        default=vocabulary.DEFAULT_RATIO,
        help="stagnant below this fraction of the run's typical parameter score (default %(default)s)",
    )
    p.add_argument(
        "--fail-on-stagnant",
        action="store_true",
        help=f"exit 1 when any parameter tag ({', '.join(vocabulary.parameter_roles())}) is "
        f"{' or '.join(vocabulary.stuck_statuses())}",
    )
    p.usage = _usage(p, command.parser())
    return p


def _usage(*parsers: argparse.ArgumentParser) -> str:
    """Each parser's usage, one under the other: the subcommand is not an argparse subparser,
    since ``tb-stagnation LOGDIR`` would then read every LOGDIR as an unknown subcommand."""
    prefix = "usage: "
    lines = [p.format_usage().removeprefix(prefix).rstrip() for p in parsers]
    return ("\n" + " " * len(prefix)).join(lines)


def _progress(done: int, total: int) -> None:
    """One self-overwriting line on a terminal while files are read."""
    end = "\n" if done == total else ""
    print(f"\r{PROG}: read {done}/{total} event files", end=end, file=sys.stderr, flush=True)


def _cell(value) -> str:
    """A table cell: three significant digits, ``-`` where nothing was measured."""
    from tb_stagnation import wire

    value = wire.number(value)
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _shorten(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width``: a tag's start names the layer, its end the tensor."""
    if len(text) <= width:
        return text
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _table(rows: Sequence[ranking.Row], width: int | None) -> tuple[str, bool]:
    """The rows as aligned columns; with ``width``, runs and tags shortened so each line fits.

    Also returns whether a name was shortened.
    """
    from tb_stagnation import wire

    run, tag = 1 + wire.TABLE_FIELDS.index("run"), 1 + wire.TABLE_FIELDS.index("tag")  # after "#"
    header = ("#", *(wire.TABLE_HEADINGS.get(f, f) for f in wire.TABLE_FIELDS))
    body = [(str(i + 1), *(_cell(getattr(r, f)) for f in wire.TABLE_FIELDS)) for i, r in enumerate(rows)]
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]
    full = list(widths)
    if width is not None:
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        for column, least in ((run, LEAST_RUN), (tag, LEAST_TAG)):  # the tag says more
            cut = max(0, min(excess, widths[column] - least))
            widths[column] -= cut
            excess -= cut
    lines = [[_shorten(cell, w) for cell, w in zip(line, widths)] for line in [header, *body]]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    return text, widths != full


def _findings_text(found: Sequence[findings.Finding], runs: Sequence[str], width: int) -> str:
    """The findings of each run, under a ``== run NAME`` line; ``no findings`` for a run without.

    Each finding wrapped at ``width``, its continuation lines indented under it.
    """
    lines = []
    for run in runs:
        lines.append(f"== run {run}")
        messages = [
            textwrap.fill(f"{f.kind}: {f.message}", width, initial_indent="  ", subsequent_indent="    ",
                          break_on_hyphens=False)
            for f in found if f.run == run
        ]
        lines.extend(messages or ["  no findings"])
    return "\n".join(lines)


def _hidden_note(hidden: Sequence[ranking.Row]) -> str:
    """How many rows of each role the table left out, and the flags that show them."""
    counts = [(role, n) for role in vocabulary.ROLES if (n := sum(r.role == role for r in hidden))]
    parts = [f"{n} {role}" for role, n in counts]
    counted = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    flags = ", ".join(f"--role {role}" for role, _ in counts)
    rows = "row" if len(hidden) == 1 else "rows"
    return f"{counted} {rows} not shown (the table shows parameters): {flags} or --all-roles shows them"


def _text(
    found: Sequence[findings.Finding], rows: Sequence[ranking.Row], runs: Sequence[str], parameters_only: bool
) -> str:
    """Findings by run, the table (of parameter rows only if ``parameters_only``), and notes on what it left out."""
    from tb_stagnation.verdict import ranking

    # COLUMNS if set, else the terminal's width, else (piped) a fixed width for the prose;
    # the table's names are shortened on a terminal only: in a pipe they are grepped.
    width = max(40, shutil.get_terminal_size((PIPED_WIDTH, 24)).columns)
    shown = ranking.select(rows, roles=vocabulary.PARAMETER_ROLES if parameters_only else None)
    table, shortened = _table(shown, width if sys.stdout.isatty() else None)
    notes = []
    if len(shown) < len(rows):
        notes.append(_hidden_note([r for r in rows if r.role not in vocabulary.PARAMETER_ROLES]))
    if shortened:
        notes.append(f"names shortened in the middle (…) to fit {width} columns; --csv prints them whole")
    parts = [_findings_text(found, runs, width), table]
    if notes:
        parts.append("\n".join(textwrap.fill(note, width) for note in notes))
    return "\n\n".join(parts)


def _no_such_run(unknown: Sequence[str], runs: Sequence[str], logdir: str) -> str:
    named = ", ".join(runs[:RUNS_NAMED]) + (f" and {len(runs) - RUNS_NAMED} more" if len(runs) > RUNS_NAMED else "")
    which = ", ".join(unknown)
    return f"--run {which}: no such run in {logdir}; its runs: {named}"


def _not_a_directory(logdir: str) -> str:
    if not os.path.exists(logdir):
        return f"{logdir}: no such directory"
    if "tfevents" in os.path.basename(logdir):
        directory = os.path.dirname(logdir) or "."
        return f"{logdir} is an event file; LOGDIR is the directory holding it: {PROG} {directory}"
    return f"{logdir} is a file, not a directory; LOGDIR is the directory holding the event files"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["checkpoints"]:
        return command.main(argv[1:])
    from tb_stagnation import api, wire
    from tb_stagnation.verdict import ranking

    args = _parser().parse_args(argv)
    if not 0 < args.ratio <= 1:
        return _fail("--ratio must be in (0, 1]")
    if args.indent is not None and (not args.json or args.indent < 0):
        return _fail("--indent N takes a number of spaces >= 0 and goes with --json")
    try:
        tag_filter = tagfilter.compile_tag_filter(args.tag)
    except tagfilter.TagFilterError as e:
        return _fail(f"--tag: {e.reason}")
    if "://" not in args.logdir and not os.path.isdir(args.logdir):
        return _fail(_not_a_directory(args.logdir))
    try:
        analysis = api.analyse(
            args.logdir, args.ratio, runs=args.run, progress=_progress if sys.stderr.isatty() else None
        )
    except api.UnknownRun as e:
        return _fail(_no_such_run(e.unknown, e.runs, args.logdir))
    except (storage.StorageError, FileNotFoundError) as e:  # a URL: unreadable (saying why), or nothing there
        return _fail(str(e))
    skipped = list(analysis.skipped)
    if "://" not in args.logdir:
        skipped += command.pending(args.logdir)
    for message in skipped:
        _say(message)
    if not analysis.rows:
        return _fail(f"{args.logdir}: no histograms or exact movement found")
    result = analysis.ranking  # of the runs asked for (--run), else every run
    rows = ranking.select(result.rows, roles=args.role, tag_filter=tag_filter)
    try:
        if args.json:
            body = wire.ranking_json(result, analysis.findings, rows, analysis.runs)
            compact = (",", ":") if args.indent is None else None
            sys.stdout.write(json.dumps(body, indent=args.indent, separators=compact, allow_nan=False))
            print()
        elif args.csv:
            writer = csv.writer(sys.stdout)
            writer.writerow(wire.CSV_FIELDS)
            writer.writerows(wire.csv_row(r) for r in rows)
        else:
            shown_runs = sorted(result.thresholds)
            print(_text(analysis.findings, rows, shown_runs, parameters_only=not (args.role or args.all_roles)))
        sys.stdout.flush()
    except BrokenPipeError:  # `tb-stagnation LOGDIR | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    stuck = [r for r in rows if r.role in vocabulary.PARAMETER_ROLES and r.status in vocabulary.STUCK_STATUSES]
    if args.fail_on_stagnant and stuck:
        return _fail(f"{len(stuck)} parameter tag(s) frozen or stagnant", EXIT_STUCK)
    return 0


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    _say(message)
    return status


if __name__ == "__main__":
    sys.exit(main())
