"""The Python API: :func:`analyse` a log directory in a notebook or a script.

    >>> import tb_stagnation
    >>> result = tb_stagnation.analyse("logs/demo")
    >>> [f.message for f in result.findings]
    >>> result.to_pandas().query("status == 'stagnant'")

The CLI is a thin face on it, and :meth:`Analysis.to_json` is the object the
ranking route answers, so what a notebook sees is what the tab shows.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable

from tb_stagnation import engine, storage, wire
from tb_stagnation.verdict import findings, ranking, vocabulary

ROOT_RUN = "."
"""TensorBoard's name for a run whose event files sit at the top of the log directory."""


@dataclasses.dataclass(frozen=True)
class Analysis:
    """A ranked log directory: every tensor's status and score, the findings, the depth profile."""

    ranking: ranking.Ranking
    findings: list[findings.Finding]
    runs: list[str]  # every run of the log directory, sorted
    skipped: list[str]  # what could not be read, one line each
    root_run: str | None = None  # what the run TensorBoard calls "." is called here, if there is one

    @property
    def rows(self) -> list[ranking.Row]:
        """Every tensor of every run: movers first, then frozen, then the unmeasurable."""
        return self.ranking.rows

    @property
    def layers(self) -> list[ranking.Layer]:
        """Each run's layers in model order with their main tensor's score: drift versus depth."""
        return self.ranking.layers

    def to_json(self) -> dict:
        """The ranking route's object (``tb-stagnation --json``): findings, rows, layers, thresholds, definitions."""
        return wire.ranking_json(self.ranking, self.findings, self.rows, self.runs)

    def to_pandas(self):
        """The rows as a ``pandas.DataFrame``, one column per row field (``pip install 'tb-stagnation[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Analysis.to_pandas needs pandas: pip install 'tb-stagnation[pandas]'"
            ) from None
        return pd.DataFrame([wire.row_json(r) for r in self.rows], columns=list(wire.ROW_FIELDS))


def analyse(
    path_or_url: str | os.PathLike,
    ratio: float = vocabulary.DEFAULT_RATIO,
    runs: Iterable[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Analysis:
    """Rank every tensor of a log directory by how much it moves, with the findings.

    ``path_or_url``: a local directory or an fsspec URL (``s3://``, ``gs://``:
    with the ``s3``/``gcs`` extra and the store's usual configuration), read by
    tb-stagnation's own event-file reader: every sample, fast, damage listed in
    :attr:`Analysis.skipped`.
    ``ratio``: stagnant below this fraction of the run's typical parameter.
    ``runs``: only these runs (a run at the top of the directory is named by
    the directory, or ``.`` as TensorBoard names it). Raises
    ``FileNotFoundError`` for a path or URL that is no directory,
    :class:`tb_stagnation.storage.StorageError` saying why for a URL that
    cannot be read, :class:`UnknownRun` (a ``LookupError``) naming the runs
    there are for an unknown run.
    """
    path = os.fspath(path_or_url)
    if not storage.isdir(path):
        raise FileNotFoundError(f"{path}: no such directory")
    outcome = engine.analyse_logdir(path, ratio, progress)
    result, found = outcome.ranking, outcome.findings
    root = root_run_name(path, list(result.thresholds)) if ROOT_RUN in result.thresholds else None
    if root not in (None, ROOT_RUN):
        result, found = _renamed(result, found, root)
    all_runs = sorted(result.thresholds)
    if runs is not None:
        runs = list(runs)
        named = {run: root if run == ROOT_RUN and root else run for run in runs}
        unknown = [run for run in runs if named[run] not in all_runs]
        if unknown:
            raise UnknownRun(path, unknown, all_runs)
        wanted = set(named.values())
        result = _only(result, wanted)
        found = [f for f in found if f.run in wanted]
    return Analysis(result, found, all_runs, [f"skipped {skip}" for skip in outcome.skipped], root)


class UnknownRun(LookupError):
    """Runs asked for that the log directory does not hold; ``runs`` are those it does."""

    def __init__(self, path: str, unknown: list[str], runs: list[str]) -> None:
        super().__init__(f"no run {unknown[0]!r} in {path}; its runs: {', '.join(runs)}")
        self.unknown, self.runs = unknown, runs


def root_run_name(logdir: str, runs: Iterable[str]) -> str:
    """What a run at the top of ``logdir`` is called: the directory's own name.

    TensorBoard calls it ``.`` (its runs are paths relative to the log
    directory), which says nothing once printed; the directory's name is
    what the user typed. ``.`` stays where that name is taken by a run below
    it (``exp/exp``) or there is none (``/``).
    """
    if "://" in logdir:
        name = os.path.basename(logdir.rstrip("/\\"))
    else:
        name = os.path.basename(os.path.abspath(logdir))
    return name if name and name not in set(runs) else ROOT_RUN


def _renamed(
    result: ranking.Ranking, found: list[findings.Finding], name: str
) -> tuple[ranking.Ranking, list[findings.Finding]]:
    """The run ``.`` called ``name`` in rows, layers, thresholds, matched series and findings."""

    def run(old: str) -> str:
        return name if old == ROOT_RUN else old

    return (
        dataclasses.replace(
            result,
            rows=[dataclasses.replace(r, run=run(r.run)) for r in result.rows],
            layers=[dataclasses.replace(layer, run=run(layer.run)) for layer in result.layers],
            thresholds={run(k): v for k, v in result.thresholds.items()},
            exact={(run(k), tag): v for (k, tag), v in result.exact.items()},
        ),
        [dataclasses.replace(f, run=run(f.run)) for f in found],
    )


def _only(result: ranking.Ranking, runs: set[str]) -> ranking.Ranking:
    """The ranking of some runs (each run is ranked on its own, so nothing else changes)."""
    return dataclasses.replace(
        result,
        rows=[r for r in result.rows if r.run in runs],
        layers=[layer for layer in result.layers if layer.run in runs],
        thresholds={k: v for k, v in result.thresholds.items() if k in runs},
        exact={k: v for k, v in result.exact.items() if k[0] in runs},
    )
