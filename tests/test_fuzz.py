"""Fuzzing: the drift engine on hostile histograms, the routes on hostile requests.

Engine: random ``[k, 3]`` bucket arrays with NaN/Inf in counts or edges, zero
and negative counts, single buckets, zero-width and reversed buckets, float32
extremes and subnormals, thousands of buckets, empty arrays.
``drift.analyse``, ``summaries.summarise``, ``histogram.quantiles`` and
``ranking.rank`` must never raise; W1 must be a metric on finite input.

Routes: any string for every query parameter of ``/ranking`` and ``/series``,
sent through werkzeug's test client to a real ``StagnationPlugin`` over a real
``MultiplexerDataProvider`` of a small log written with TensorBoard's TF-free
writer, must give a 200/400/404 JSON answer, never a 500.

Case counts are fixed (``max_examples``) and printed at the end of the module
(``pytest -s``); the file runs in well under a minute.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from oracles import batch

from tb_stagnation.measure import drift, histogram
from tb_stagnation.measure.summaries import Summary, summarise
from tb_stagnation.verdict import ranking
from tb_stagnation.verdict.vocabulary import Source, Status

CASES: dict[str, int] = {}


def _count(name: str) -> None:
    CASES[name] = CASES.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    total = sum(CASES.values())
    print(f"\nfuzz cases run: {total} " + json.dumps(CASES, sort_keys=True))


def fuzz(max_examples: int) -> settings:
    """Fixed case counts, no per-example deadline (the machine is shared)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)
SPECIAL = [
    0.0, -0.0, 1.0, -1.0, F32_MAX, -F32_MAX, F32_TINY, -F32_TINY,
    float(np.finfo(np.float32).tiny), 1e-30, 1e30, float("nan"), float("inf"), float("-inf"),
]
FINITE_SPECIAL = [v for v in SPECIAL if math.isfinite(v)]


def floats(finite: bool) -> st.SearchStrategy[float]:
    plain = st.floats(-F32_MAX, F32_MAX, allow_nan=False, allow_infinity=False, width=32)
    moderate = st.floats(-10, 10, allow_nan=False, width=32)
    special = st.sampled_from(FINITE_SPECIAL if finite else SPECIAL)
    return st.one_of(moderate, moderate, plain, special)


@st.composite
def raw_histograms(
    draw, finite: bool = False, max_buckets: int = 12, many: tuple[int, int] | None = None
) -> np.ndarray:
    """A raw ``[k, 3]`` array as a loader might hand it over, or worse.

    ``many``: (min, max) bucket count of a large regular layout instead.
    W1 costs O(K^2) per pair, so those get a test of their own with few cases.
    """
    shape = "many" if many else draw(st.sampled_from(["small", "small", "small", "single", "empty"]))
    if shape == "empty":
        return np.zeros((0, 3), dtype=draw(st.sampled_from([np.float32, np.float64])))
    if shape == "many":
        # Thousands of buckets: a regular layout with a few fuzzed cells.
        k = draw(st.integers(*many))
        lo = draw(st.floats(-1e3, 1e3, width=32))
        width = draw(st.sampled_from([0.0, 1e-3, 1.0]))
        edges = lo + width * np.arange(k + 1)
        counts = np.asarray(
            draw(hnp.arrays(np.float64, k, elements=st.sampled_from([0.0, 1.0, 3.0, 100.0])))
        )
        arr = np.column_stack([edges[:-1], edges[1:], counts])
        for _ in range(draw(st.integers(0, 3))):
            i, j = draw(st.integers(0, k - 1)), draw(st.integers(0, 2))
            arr[i, j] = draw(floats(finite))
        return arr
    k = 1 if shape == "single" else draw(st.integers(1, max_buckets))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    style = draw(st.sampled_from(["sorted", "sorted", "random"]))
    if style == "sorted":  # a plausible layout: ordered edges, some fuzzed
        edges = np.sort(np.asarray(draw(st.lists(floats(True), min_size=k + 1, max_size=k + 1))))
        counts = draw(st.lists(
            st.one_of(st.integers(0, 1000).map(float), floats(finite)), min_size=k, max_size=k
        ))
        arr = np.column_stack([edges[:-1], edges[1:], counts])
        if draw(st.booleans()):  # zero-width (all-equal tensor) or reversed (Rust's empty outer) rows
            i = draw(st.integers(0, k - 1))
            arr[i, 1] = arr[i, 0] if draw(st.booleans()) else arr[i, 0] - abs(draw(floats(True)))
        if not finite and draw(st.booleans()):
            arr[draw(st.integers(0, k - 1)), draw(st.integers(0, 1))] = draw(floats(False))
    else:
        arr = np.asarray(draw(hnp.arrays(np.float64, (k, 3), elements=floats(finite))))
    with np.errstate(over="ignore", invalid="ignore"):
        arr = arr.astype(dtype)
    if finite:  # edge arithmetic above may overflow float32 to +-inf
        arr[~np.isfinite(arr)] = 0
    return arr


def _finite_or_nan(values) -> bool:
    a = np.asarray(values, dtype=np.float64)
    return bool((np.isfinite(a) | np.isnan(a)).all())


def _check_series(series: drift.Series, summary: Summary, n_distinct: int) -> None:
    assert len(series.steps) == n_distinct
    assert (series.steps[1:] > series.steps[:-1]).all()  # np.diff would wrap for steps 2^63 apart
    for name in ("rms", "drift", "rate", "floor"):
        assert _finite_or_nan(getattr(series, name)), name
    assert not (series.drift < 0).any() and not (series.rate < 0).any()
    for name in ("score", "net", "floor"):
        assert _finite_or_nan([getattr(summary, name)]), name
    assert _finite_or_nan(summary.sparkline)
    assert 0 <= summary.samples <= n_distinct
    assert summary.nonfinite == (not series.finite.all())
    if summary.samples < 2:
        assert math.isnan(summary.net) and not summary.frozen


@fuzz(300)
@given(
    data=st.lists(
        st.tuples(st.integers(-(2**62), 2**62), st.floats(0, 2e9), raw_histograms()),
        min_size=0, max_size=6,
    )
)
def test_analyse_summarise_quantiles_never_raise(data) -> None:
    _count("engine_series")
    steps = [d[0] for d in data]
    walls = [d[1] for d in data]
    raws = [d[2] for d in data]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning is a bug waiting to happen
        series = drift.analyse(steps, walls, raws)
        summary = summarise(series)
        q = histogram.quantiles(series.histograms)
    _check_series(series, summary, len(set(steps)))
    assert q.shape == (len(series.steps), len(histogram.DISTRIBUTION_BPS))
    assert _finite_or_nan(q)
    for i, ok in enumerate(series.valid):
        assert np.isnan(q[i]).all() != ok
        if ok:
            b = series.histograms.take(np.array([i]))
            mass = b.count > 0
            lo, hi = b.left[mass].min(), b.right[mass].max()
            slack = 1e-12 * max(abs(lo), abs(hi))  # left + frac * (right - left) rounds
            assert lo - slack <= q[i].min() and q[i].max() <= hi + slack


@fuzz(4)
@given(
    a=raw_histograms(many=(1000, 1200)),
    b=raw_histograms(many=(1000, 1200)),
    c=raw_histograms(finite=True),
)
def test_thousands_of_buckets(a, b, c) -> None:
    _count("engine_thousands_of_buckets")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        series = drift.analyse([0, 10, 20], [0.0, 0.0, 0.0], [a, b, c])
        summary = summarise(series)
        q = histogram.quantiles(series.histograms)
    _check_series(series, summary, 3)
    assert _finite_or_nan(q)


def _single(raw: np.ndarray) -> histogram.Batch:
    return batch([raw])


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 of two raw histograms through the kernel the drift uses."""
    return float(histogram.wasserstein_pairs(batch([a, b]), np.array([0]), np.array([1]))[0])


@fuzz(300)
@given(a=raw_histograms(finite=True), b=raw_histograms(finite=True), c=raw_histograms(finite=True))
def test_w1_is_a_metric_on_finite_input(a, b, c) -> None:
    _count("w1_metric")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ha, hb, hc = _single(a), _single(b), _single(c)
        ab, ba, ac, bc, aa = _w1(a, b), _w1(b, a), _w1(a, c), _w1(b, c), _w1(a, a)
    empty = [h.total[0] <= 0 for h in (ha, hb, hc)]
    if empty[0]:
        assert math.isnan(ab) and math.isnan(aa)
        return
    assert aa == 0.0
    if empty[1]:
        assert math.isnan(ab) and math.isnan(ba)
        return
    span = max(float(np.abs(np.concatenate([h.left[0], h.right[0]])).max()) for h in (ha, hb, hc))
    tol = 1e-9 * span + 1e-300
    assert math.isfinite(ab) and ab >= 0
    assert abs(ab - ba) <= tol
    if not empty[2]:
        assert ac <= ab + bc + tol * 4, (ac, ab, bc)


@fuzz(150)
@given(
    bad=st.lists(st.tuples(st.integers(0, 100), raw_histograms(max_buckets=6)), min_size=1, max_size=5),
    position=st.integers(0, 4),
    poison=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    column=st.integers(0, 2),
)
def test_nonfinite_is_flagged_and_poisons_nothing_else(bad, position, poison, column) -> None:
    _count("nonfinite_rank")
    steps = [s for s, _ in bad]
    raws = [np.array(r, dtype=np.float64) for _, r in bad]
    i = position % len(raws)
    if raws[i].size == 0:
        raws[i] = np.array([[0.0, 1.0, 1.0]])
    raws[i][0, column] = poison
    # Keep the poisoned sample: it must hold the newest write of its step.
    walls = [1.0 if j == i else 0.0 for j in range(len(raws))]
    bad_summary = summarise(drift.analyse(steps, walls, raws))
    assert bad_summary.nonfinite

    rng = np.random.default_rng(0)
    good_steps, good_raw = [], []
    for s in range(0, 50, 5):
        values = rng.normal(0.01 * s, 1.0, 500)
        counts, edges = np.histogram(values, bins=30)
        good_steps.append(s)
        good_raw.append(np.column_stack([edges[:-1], edges[1:], counts]))
    good_summary = summarise(drift.analyse(good_steps, [0.0] * 10, good_raw))
    alone = ranking.rank({"run": {"good/kernel": good_summary}})
    together = ranking.rank({"run": {"good/kernel": good_summary, "bad/kernel": bad_summary},
                             "other": {"good/kernel": good_summary}})
    rows = {(r.run, r.tag): r for r in together.rows}
    assert rows[("run", "bad/kernel")].status == Status.NONFINITE
    for run in ("run", "other"):
        row = rows[(run, "good/kernel")]
        assert row.status != Status.NONFINITE
        assert row.score == good_summary.score and math.isfinite(row.score)
        assert math.isfinite(together.thresholds[run][Source.HISTOGRAM])
    assert rows[("other", "good/kernel")].status == alone.rows[0].status


# --- HTTP parameters ---------------------------------------------------------------------------


def _write_log(logdir: Path) -> None:
    """Two runs, three tags, written with TensorBoard's TF-free record writer."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.histogram import summary_v2
    from tensorboard.summary.writer.record_writer import RecordWriter

    rng = np.random.default_rng(0)
    for r, run in enumerate(("train", "eval/sub")):
        path = logdir / run / f"events.out.tfevents.{1700000000 + r}.fuzz.{r}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            w = RecordWriter(f)
            w.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
            for step in range(0, 40, 4):
                for tag, speed in (("conv1/kernel", 0.05), ("conv1/bias", 0.02), ("frozen/kernel", 0.0)):
                    data = rng.normal(speed * step, 1.0, 300) if speed else np.linspace(-1, 1, 300)
                    ev = event_pb2.Event(step=step, wall_time=1.7e9 + step,
                                         summary=summary_v2.histogram_pb(tag, data, buckets=30))
                    w.write(ev.SerializeToString())


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from tensorboard.backend.event_processing import data_provider as mdp
    from tensorboard.backend.event_processing import plugin_event_multiplexer as mux
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client

    from tb_stagnation.plugin import StagnationPlugin

    logdir = tmp_path_factory.mktemp("fuzzlog")
    _write_log(logdir)
    multiplexer = mux.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    context = base_plugin.TBContext(
        data_provider=mdp.MultiplexerDataProvider(multiplexer, str(logdir)),
        logdir=str(logdir),
        sampling_hints={},
    )
    apps = StagnationPlugin(context).get_plugin_apps()
    return {route: Client(app) for route, app in apps.items()}


ANY_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),  # URLs carry no lone surrogates
    st.text(alphabet="()[]{}*+?|\\^$.,-:=!<>&%#", max_size=300),
    st.sampled_from([
        "train", "eval/sub", "conv1/kernel", "frozen/kernel", "weight", "bias", "moving", "frozen",
        "nan", "inf", "-inf", "1e-400", "0", "1", "0.5", "1e309", "0x1p-3", "  0.1 ", "\x00", "(", "a" * 300,
        "(a+)+$", "(?P<x>a)(?P=x)", "\\1", "[", "(?i)CONV", "^conv", "é", "%ff",
    ]),
)


def _query(draw_params: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, vs in draw_params.items() for v in vs]


PARAMS = st.dictionaries(
    st.sampled_from(["run", "tag", "role", "status", "ratio", "other"]),
    st.lists(ANY_TEXT, min_size=1, max_size=3),
    max_size=5,
)


def _check_answer(response, route: str) -> int:
    status = response.status_code
    assert status in (200, 400, 404), (route, status, response.get_data(as_text=True)[:500])
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.get_data())
    if status == 200:
        assert "error" not in body
    else:
        assert isinstance(body.get("error"), str) and "Traceback" not in body["error"]
    return status


@fuzz(250)
@given(params=PARAMS)
def test_ranking_parameters_never_500(client, params) -> None:
    _count("http_ranking")
    _check_answer(client["/ranking"].get("/", query_string=_query(params)), "/ranking")


@fuzz(250)
@given(params=PARAMS, known_run=st.booleans(), known_tag=st.booleans())
def test_series_parameters_never_500(client, params, known_run, known_tag) -> None:
    _count("http_series")
    if known_run:
        params = {**params, "run": ["train"]}
    if known_tag:
        params = {**params, "tag": ["conv1/kernel"]}
    _check_answer(client["/series"].get("/", query_string=_query(params)), "/series")


@fuzz(60)
@given(raw=st.binary(max_size=200))
def test_raw_query_bytes_never_500(client, raw) -> None:
    """Undecodable percent-escapes and stray separators in the raw query string."""
    _count("http_raw_query")
    for route in ("/ranking", "/series"):
        response = client[route].get("/", environ_overrides={"QUERY_STRING": raw.decode("latin-1")})
        _check_answer(response, route)


def test_known_answers_and_content_types(client) -> None:
    """Sanity anchors for the fuzzing above: real data gives real answers."""
    r = client["/ranking"].get("/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = json.loads(r.get_data())
    assert body["runs"] == ["eval/sub", "train"] and len(body["rows"]) == 6
    statuses = {(row["run"], row["tag"]): row["status"] for row in body["rows"]}
    assert statuses[("train", "frozen/kernel")] == "frozen"
    assert statuses[("train", "conv1/kernel")] == "moving"
    r = client["/series"].get("/", query_string={"run": "train", "tag": "conv1/kernel"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert json.loads(r.get_data())["steps"] == list(range(0, 40, 4))
