"""The Stagnation plugin: TensorBoard routes over the drift engine.

Shaped like TensorBoard's own plugins: this module only turns requests into
calls on :mod:`tb_stagnation.reading` and :mod:`tb_stagnation.ranking` and
their results into JSON. Every failure a request can cause is answered with
a JSON error and a 4xx status; nothing from a request is ever used as a path.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import importlib.resources
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_stagnation import drift, exact, findings, histogram, metadata, naming, ranking, reading, tagfilter

logger = logging.getLogger(__name__)
_RESPONSE_CACHE_SIZE = 16  # distinct ranking queries kept as encoded answers
# Seconds a listing stands for the data; see StagnationPlugin._listings.
LISTING_TTL = 1.0


class RequestError(Exception):
    """A request the plugin refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Answer:
    """A JSON answer encoded once, for serving many times.

    Warm requests then cost no encoding: the UTF-8 body is kept, its gzip is
    made on the first request that accepts gzip (``http_util.Respond`` would
    otherwise compress the ~1.7 MB of a 1,000-tag ranking on every request,
    ~40 ms), and a weak ETag of the body lets a revalidating browser get a
    bodiless 304 while nothing changed.
    """

    def __init__(self, text: str) -> None:
        self.body = text.encode("utf-8")
        self.etag = hashlib.blake2b(self.body, digest_size=16).hexdigest()
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        """The body gzipped as ``http_util.Respond`` does it (level 3, mtime 0: deterministic)."""
        if self._gzipped is None:  # a race only compresses twice, to the same bytes
            self._gzipped = gzip.compress(self.body, compresslevel=3, mtime=0)
        return self._gzipped

    def respond(self, request: wrappers.Request) -> wrappers.Response:
        """200 with the body, gzipped if the client accepts it, or 304 if the client has it."""
        # Respond gunzips it again for a client that its own, stricter test says
        # refuses gzip (e.g. "gzip;q=0.5"), so every client reads the body.
        if request.accept_encodings["gzip"]:
            content, encoding = self.gzipped(), "gzip"
        else:
            content, encoding = self.body, None
        response = http_util.Respond(
            request, content, "application/json", content_encoding=encoding,
            headers=[("Vary", "Accept-Encoding")],
        )
        # Weak: the gzipped and the plain body are the same JSON, so they share a tag.
        response.set_etag(self.etag, weak=True)
        return response.make_conditional(request)


def _json_route(handler: Callable[[wrappers.Request], object]):
    """Wrap a handler so that every answer, error or not, is JSON."""

    @wrappers.Request.application
    def app(request: wrappers.Request) -> wrappers.Response:
        try:
            body, status = handler(request), 200
        except RequestError as e:
            body, status = {"error": str(e)}, e.status
        except tagfilter.TagFilterError as e:
            body, status = {"error": str(e)}, 400
        except errors.NotFoundError as e:
            body, status = {"error": str(e)}, 404
        except errors.PublicError as e:
            body, status = {"error": str(e)}, e.http_code
        except UnicodeDecodeError:  # raw non-UTF-8 bytes in the query string
            body, status = {"error": "query string is not valid UTF-8"}, 400
        except Exception:  # the engine must never leak a stack trace
            logger.exception("tb-stagnation failed on %s", request.path)
            body, status = {"error": "internal error; see the TensorBoard log"}, 500
        if isinstance(body, Answer):
            return body.respond(request)
        return http_util.Respond(request, _dumps(body), "application/json", code=status)

    return app


def _choices(request: wrappers.Request, name: str, allowed: tuple[str, ...]) -> set[str] | None:
    values = request.args.getlist(name)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise RequestError(400, f"unknown {name} {unknown[0]!r}; expected one of {list(allowed)}")
    return set(values) or None


def _ratio(request: wrappers.Request) -> float:
    raw = request.args.get("ratio")
    if raw is None:
        return ranking.DEFAULT_RATIO
    try:
        value = float(raw)
    except ValueError:
        raise RequestError(400, f"ratio must be a number, got {raw[:40]!r}") from None
    if not (0 < value <= 1):
        raise RequestError(400, "ratio must be in (0, 1]")
    return value


def _number(value):
    """JSON-friendly number: NaN (nothing measured) and other non-finite values become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _dumps(body: dict) -> str:
    """JSON text; every number is finite or null by construction (see _number, _list)."""
    return json.dumps(body, allow_nan=False)


class _Listings(NamedTuple):
    """What one request reads first: the request context and both listings."""

    ctx: object
    experiment: str
    histograms: dict
    exact: dict
    version: tuple  # both listings' reading.snapshot: identifies the data they list


def _list(values: np.ndarray) -> list:
    return [None if not np.isfinite(v) else float(v) for v in values]


class StagnationPlugin(base_plugin.TBPlugin):
    """Ranks layers by how much their histograms move."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._reader = reading.Reader(
            context.data_provider, reading.downsample_from_hints(context.sampling_hints)
        )
        self._lock = threading.Lock()
        self._responses: collections.OrderedDict[tuple, Answer] = collections.OrderedDict()
        self._listed: dict[str, tuple[float, _Listings]] = {}  # experiment -> (listed at, listings)

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index,
            "/ranking": _json_route(self._ranking),
            "/series": _json_route(self._series),
        }

    def is_active(self) -> bool:
        return False  # data_plugin_names() decides: active exactly when histograms exist

    def data_plugin_names(self):
        return (metadata.HISTOGRAMS_PLUGIN_NAME, metadata.PLUGIN_NAME)

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Stagnation")

    @wrappers.Request.application
    def _serve_index(self, request: wrappers.Request) -> wrappers.Response:
        body = importlib.resources.files("tb_stagnation").joinpath("static/index.js").read_bytes()
        return http_util.Respond(request, body, "text/javascript")

    def _listings(self, request: wrappers.Request) -> _Listings:
        """Both listings of the request's experiment, read at most once per LISTING_TTL.

        Listing is most of what a warm request costs: the Python loader's
        ``list_tensors`` walks every stored event for each tag's newest step
        (~50 ms at 1,000 tags x 200 steps; the data server's is about as slow),
        while everything after it is served from cache. TensorBoard itself
        loads new events only every ``--reload_interval`` seconds (5 by
        default), so letting a listing stand for one second delays a reload
        by at most that second, and requests in a burst (``/ranking`` then
        ``/series``, several clients or tabs) share one listing.
        """
        ctx = plugin_util.context(request.environ)
        experiment = plugin_util.experiment_id(request.environ)
        now = time.monotonic()
        with self._lock:
            listed = self._listed.get(experiment)
        if listed is not None and now - listed[0] < LISTING_TTL:
            return listed[1]._replace(ctx=ctx)
        histograms = self._reader.histogram_tags(ctx, experiment)
        exact_listing = self._reader.exact_tags(ctx, experiment)
        data = _Listings(
            ctx,
            experiment,
            histograms,
            exact_listing,
            (reading.snapshot(histograms), reading.snapshot(exact_listing)),
        )
        with self._lock:  # stamped with the time before listing: data can only be newer
            self._listed = {e: v for e, v in self._listed.items() if now - v[0] < LISTING_TTL}
            self._listed[experiment] = (now, data)
        return data

    def _rank(
        self, data: _Listings, runs: list[str] | None, ratio: float
    ) -> tuple[ranking.Ranking, list[str]]:
        """Ranking of the chosen runs (all if None), and all runs."""
        listing, exact_listing = data.histograms, data.exact
        all_runs = sorted(set(listing) | set(exact_listing))
        if runs:
            missing = [r for r in runs if r not in all_runs]
            if missing:
                raise RequestError(404, f"unknown run {missing[0]!r}")
            listing = {r: t for r, t in listing.items() if r in runs}
            exact_listing = {r: t for r, t in exact_listing.items() if r in runs}
        summaries = self._reader.summaries(data.ctx, data.experiment, listing)
        exact_data = self._reader.exact(data.ctx, data.experiment, exact_listing)
        return ranking.rank(summaries, exact_data, ratio), all_runs

    def _ranking(self, request: wrappers.Request) -> Answer:
        """The ranking, served from cache while the data and query are unchanged."""
        runs = request.args.getlist("run") or None
        roles = _choices(request, "role", naming.ROLES)
        statuses = _choices(request, "status", ranking.STATUSES)
        tag_filter = tagfilter.compile_tag_filter(request.args.get("tag"))
        ratio = _ratio(request)
        data = self._listings(request)
        key = (data.experiment, tuple(sorted(request.args.items(multi=True))), data.version)
        with self._lock:
            if key in self._responses:
                self._responses.move_to_end(key)
                return self._responses[key]
        result, all_runs = self._rank(data, runs, ratio)
        rows = ranking.select(result.rows, roles=roles, statuses=statuses, tag_filter=tag_filter)
        body = findings.ranking_json(result, rows, all_runs)
        answer = Answer(_dumps(body))
        with self._lock:
            self._responses[key] = answer
            while len(self._responses) > _RESPONSE_CACHE_SIZE:
                self._responses.popitem(last=False)
        return answer

    def _series(self, request: wrappers.Request) -> dict:
        run, tag = request.args.get("run"), request.args.get("tag")
        if not run or not tag:
            raise RequestError(400, "series needs both run and tag")
        ratio = _ratio(request)
        data = self._listings(request)
        result, _ = self._rank(data, [run], ratio)
        row = next((r for r in result.rows if r.tag == tag), None)
        if row is None:
            raise RequestError(404, f"unknown tag {tag!r} in run {run!r}")
        thresholds = result.thresholds[run]
        body = {
            **findings.record(row),
            "thresholds": {src: _number(t) for src, t in thresholds.items()},
        }
        matched = result.exact.get((run, tag), {})
        for source in (ranking.EXACT, ranking.CHECKPOINT):
            body[source] = _exact_json(matched.get(source))
        meta = data.histograms.get(run, {}).get(tag)
        if meta is None:  # a parameter with exact data only
            series = drift.analyse([], [], [])
        else:
            series = self._reader.series(data.ctx, data.experiment, run, tag, meta)
        body.update(series_json(series, thresholds[ranking.HISTOGRAM]))
        return body


def series_json(series: drift.Series, threshold: float) -> dict:
    """The per-sample arrays the tab charts."""
    values = histogram.quantiles(series.histograms)
    return {
        "stagnant_since": drift.stagnant_since(series, threshold),
        "steps": [int(s) for s in series.steps],
        "wall_times": [float(w) for w in series.wall_times],
        "drift": _list(series.drift),
        "rate": _list(series.rate),
        "percentiles": {
            "bps": list(histogram.DISTRIBUTION_BPS),
            "values": [_list(v) if np.isfinite(v).all() else None for v in values],
        },
    }


def _exact_json(series: exact.ExactSeries | None) -> dict | None:
    """One exact-movement series as the tab charts it; ``None`` where the row has none."""
    if series is None:
        return None
    return {
        "axis": series.axis,
        "steps": [int(s) for s in series.steps],
        "update_ratio": _list(series.update_ratio),
        "rms": _list(series.rms),
        "grad_norm": _list(series.grad_norm) if len(series.grad_norm) else None,
        "change": _list(series.change) if len(series.change) else None,
        "cosine": _list(series.cosine) if len(series.cosine) else None,
    }
