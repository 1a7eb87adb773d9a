"""The Stagnation plugin: TensorBoard routes over the ranking pipeline.

Shaped like TensorBoard's own plugins (its histograms plugin): each route
only reads its query and hands it to a ``*_impl`` method, which asks
:mod:`tb_stagnation.engine` (the pipeline over the data provider, cached)
and answers with what :mod:`tb_stagnation.wire` builds.
Refusals are raised as TensorBoard's own ``errors`` types, whose HTTP codes
the routes answer with a JSON error; nothing from a request is ever used as
a path, and anything else is a logged 500 with no stack trace in the body.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers
from werkzeug.datastructures import Headers

from tb_stagnation import caches, engine, records, tagfilter, wire
from tb_stagnation.measure import drift
from tb_stagnation.sources import provider
from tb_stagnation.verdict import ranking, vocabulary

logger = logging.getLogger(__name__)
# Encoded ranking and series answers kept, the last complete one per query, by bytes (body
# plus gzip): ~2 MB a ranking at 1,000 tags, so a few dozen queries of a large log, or a
# handful of a 10,000-tag one. An answer served while its query is refreshed also holds its
# flagged copy (Answer.refreshing), which goes with it when the new answer replaces it.
ANSWER_CACHE_BYTES = 64 << 20
# Threads making answers from new data in the background, one experiment each at a time.
REFRESH_WORKERS = 2
# Seconds a listing stands for the data; see StagnationPlugin._listings.
LISTING_TTL = 1.0


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
        self._refreshing: Answer | None = None

    def refreshing(self) -> Answer:
        """This answer flagged ``refreshing`` (served while a newer one is made), made once.

        Swaps the last field (:func:`wire.freshness_json`) in the encoded text,
        rather than encoding the whole answer again on the request that must
        not wait; its own ETag, so a client that revalidates it gets the new
        answer once there is one.
        """
        if self._refreshing is None:
            text = self.body.decode("utf-8")
            assert text.endswith(_NOT_REFRESHING), "refreshing must be an answer's last field"
            self._refreshing = Answer(text[: -len(_NOT_REFRESHING)] + _REFRESHING)
        return self._refreshing

    @property
    def nbytes(self) -> int:
        """What keeping it costs, for the cache: the body, and a gzip of JSON at most a quarter of it."""
        return len(self.body) + len(self.body) // 4

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
        response = response.make_conditional(request)
        return _NotModified(status=304, headers=response.headers) if response.status_code == 304 else response


_NOT_REFRESHING, _REFRESHING = (json.dumps({"refreshing": flag})[1:] for flag in (False, True))


class _NotModified(wrappers.Response):
    """A bodiless 304 that keeps its Content-Type.

    werkzeug sends a 304 without entity headers, Content-Type among them, and
    TensorBoard's security middleware then prints a warning in the user's terminal
    for every revalidated request ("Content-Type is required on a Response").
    """

    def get_wsgi_headers(self, environ) -> Headers:
        headers = super().get_wsgi_headers(environ)
        headers.setdefault("Content-Type", self.content_type)
        return headers


def _json_route(handler: Callable[[wrappers.Request], object]):
    """Wrap a route so that every answer, error or not, is JSON.

    TensorBoard's own error handler would answer its ``errors`` types as
    plain text; the tab reads every answer as JSON, so they are answered
    here, with the same HTTP codes.
    """

    @wrappers.Request.application
    def app(request: wrappers.Request) -> wrappers.Response:
        try:
            body, status = handler(request), 200
        except errors.PublicError as e:
            body, status = {"error": str(e)}, e.http_code
        except UnicodeDecodeError:  # raw non-UTF-8 bytes in the query string
            body, status = {"error": "Invalid argument: query string is not valid UTF-8"}, 400
        except Exception:  # the engine must never leak a stack trace
            logger.exception("tb-stagnation failed on %s", request.path)
            body, status = {"error": "internal error; see the TensorBoard log"}, 500
        if isinstance(body, Answer):
            return body.respond(request)
        return http_util.Respond(request, _dumps(body), "application/json", code=status)

    return app


class Query(NamedTuple):
    """What a ranking request asks for; hashable, so it keys the answer cache."""

    runs: tuple[str, ...] = ()  # sorted; empty: every run
    roles: frozenset[str] = frozenset()  # empty: every role
    statuses: frozenset[str] = frozenset()  # empty: every status
    tag: str = ""  # a regex (tagfilter), empty: every tag
    ratio: float = vocabulary.DEFAULT_RATIO

    @classmethod
    def from_request(cls, request: wrappers.Request) -> Query:
        """The query of a request; a malformed one raises ``errors.InvalidArgumentError``."""
        return cls(
            runs=tuple(sorted(set(request.args.getlist("run")))),  # one key whatever their order
            roles=_choices(request, "role", vocabulary.ROLES),
            statuses=_choices(request, "status", vocabulary.STATUSES),
            tag=request.args.get("tag") or "",
            ratio=_ratio(request),
        )


def _choices(request: wrappers.Request, name: str, allowed: tuple[str, ...]) -> frozenset[str]:
    values = request.args.getlist(name)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise errors.InvalidArgumentError(f"unknown {name} {unknown[0]!r}; expected one of {list(allowed)}")
    return frozenset(values)


def _ratio(request: wrappers.Request) -> float:
    raw = request.args.get("ratio")
    if raw is None:
        return vocabulary.DEFAULT_RATIO
    try:
        value = float(raw)
    except ValueError:
        raise errors.InvalidArgumentError(f"ratio must be a number, got {raw[:40]!r}") from None
    if not (0 < value <= 1):
        raise errors.InvalidArgumentError("ratio must be in (0, 1]")
    return value


def _fresh(request: wrappers.Request) -> bool:
    """``fresh=1``: wait for an answer over the data now listed rather than take the last complete one."""
    raw = request.args.get("fresh", "0")
    if raw not in ("0", "1"):
        raise errors.InvalidArgumentError(f"fresh must be 0 or 1, got {raw[:40]!r}")
    return raw == "1"


def _dumps(body: dict) -> str:
    """JSON text; every number is finite or null by construction (:mod:`tb_stagnation.wire`)."""
    return json.dumps(body, allow_nan=False)


class _Listings(NamedTuple):
    """Both listings of an experiment, as one request reads them first."""

    histograms: dict
    exact: dict
    stamp: caches.Stamp  # when listed, and both listings' provider.snapshot: identifies the data they list


class StagnationPlugin(base_plugin.TBPlugin):
    """Ranks layers by how much they move: histogram drift, exact writers, imported checkpoints."""

    plugin_name = records.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        hints = context.sampling_hints
        self._engine = engine.Engine(
            provider.ProviderSource(
                context.data_provider,
                provider.downsample_from_hints(hints),
                exact_downsample=provider.downsample_from_hints(hints, records.PLUGIN_NAME),
            )
        )
        self._listed: caches.Recent[_Listings] = caches.Recent(LISTING_TTL)  # experiment -> listings
        # (experiment, route, query) -> the last complete answer, made anew in the background.
        self._answers: caches.Refreshed[Answer] = caches.Refreshed(
            ANSWER_CACHE_BYTES, lambda a: a.nbytes, workers=REFRESH_WORKERS
        )

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index,
            "/ranking": _json_route(self._serve_ranking),
            "/series": _json_route(self._serve_series),
        }

    def is_active(self) -> bool:
        return False  # data_plugin_names() decides: active exactly when histograms exist

    def data_plugin_names(self):
        return (records.HISTOGRAMS_PLUGIN_NAME, records.PLUGIN_NAME)

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Stagnation")

    @wrappers.Request.application
    def _serve_index(self, request: wrappers.Request) -> wrappers.Response:
        body = importlib.resources.files("tb_stagnation").joinpath("static/index.js").read_bytes()
        return http_util.Respond(request, body, "text/javascript")

    def _serve_ranking(self, request: wrappers.Request) -> Answer:
        return self.ranking_impl(
            plugin_util.context(request.environ),
            plugin_util.experiment_id(request.environ),
            Query.from_request(request),
            fresh=_fresh(request),
        )

    def _serve_series(self, request: wrappers.Request) -> Answer:
        run, tag = request.args.get("run"), request.args.get("tag")
        if not run or not tag:
            raise errors.InvalidArgumentError("series needs both run and tag")
        return self.series_impl(
            plugin_util.context(request.environ),
            plugin_util.experiment_id(request.environ),
            run,
            tag,
            _ratio(request),
            fresh=_fresh(request),
        )

    def ranking_impl(self, ctx, experiment: str, query: Query, fresh: bool = False) -> Answer:
        """The ranking answer (:func:`wire.ranking_json`), encoded once per query and data version.

        Once a query has an answer, new data does not hold up its requests:
        they get the last complete answer, flagged ``refreshing``, while the
        new one is made in the background (:meth:`_answer`).
        """
        tag_filter = tagfilter.compile_tag_filter(query.tag)

        def make(listings: _Listings) -> Answer:
            outcome, all_runs = self._rank(ctx, experiment, listings, query.runs, query.ratio)
            rows = ranking.select(
                outcome.ranking.rows,
                roles=query.roles or None,
                statuses=query.statuses or None,
                tag_filter=tag_filter,
            )
            return Answer(_dumps(wire.ranking_json(outcome.ranking, outcome.findings, rows, all_runs)))

        return self._answer(ctx, experiment, ("ranking", query), query.runs, make, fresh)

    def series_impl(self, ctx, experiment: str, run: str, tag: str, ratio: float, fresh: bool = False) -> Answer:
        """One row with everything the detail view charts (:func:`wire.series_json`), refreshed as a ranking is."""

        def make(listings: _Listings) -> Answer:
            outcome, _ = self._rank(ctx, experiment, listings, (run,), ratio)
            result = outcome.ranking
            row = next((r for r in result.rows if r.tag == tag), None)
            if row is None:
                raise errors.NotFoundError(f"unknown tag {tag!r} in run {run!r}")
            meta = listings.histograms.get(run, {}).get(tag)
            if meta is None:  # a parameter with exact data only
                series = drift.analyse([], [], [])
            else:
                series = self._engine.series(ctx, experiment, run, tag, meta)
            return Answer(_dumps(wire.series_json(row, result, series, result.exact.get((run, tag), {}))))

        return self._answer(ctx, experiment, ("series", run, tag, ratio), (run,), make, fresh)

    def _answer(
        self, ctx, experiment: str, query: tuple, runs: tuple[str, ...], make: Callable[[_Listings], Answer], fresh: bool
    ) -> Answer:
        """The answer to ``query`` over the data now listed, or the last complete one while it is made.

        The first answer to a query, and every answer asked ``fresh``, is made
        on the request (waiting for a background read under way, then reading
        what is left); later ones come from :class:`caches.Refreshed`, which
        makes the new answer on a background thread, one experiment at a time,
        from the listing of when it runs. While an experiment is being
        refreshed, a query with a kept answer gets it without listing the data
        (most of what such a request costs, and slow while the loader and the
        refresh hold the interpreter); otherwise unknown runs are refused
        against the current listing, whatever is kept.
        """

        def listed_and_made() -> tuple[caches.Stamp, Answer]:
            now = self._listings(ctx, experiment)
            return now.stamp, make(now)

        key = (experiment, *query)
        if not fresh and (during := self._answers.while_refreshing(experiment, key, listed_and_made)) is not None:
            return during.refreshing()  # no listing: a newer answer is being made
        listings = self._listings(ctx, experiment)
        _ranked_runs(listings, runs)
        answer, refreshing = self._answers.get(experiment, key, listings.stamp.version, listed_and_made, wait=fresh)
        return answer.refreshing() if refreshing else answer

    def _listings(self, ctx, experiment: str) -> _Listings:
        """Both listings of an experiment, read at most once per LISTING_TTL.

        Listing is most of what a warm request costs: the Python loader's
        ``list_tensors`` walks every stored event for each tag's newest step
        (~50 ms at 1,000 tags x 200 steps; the data server's is about as slow),
        while everything after it is served from cache. TensorBoard itself
        loads new events only every ``--reload_interval`` seconds (5 by
        default), so letting a listing stand for one second delays a reload
        by at most that second, and requests in a burst (``/ranking`` then
        ``/series``, several clients or tabs) share one listing.
        """
        listed = self._listed.get(experiment)
        if listed is not None:
            return listed
        made_at = time.monotonic()  # before listing: the data can only be newer
        histograms = self._engine.source.histogram_tags(ctx, experiment)
        exact_listing = self._engine.source.exact_tags(ctx, experiment)
        listed = _Listings(
            histograms,
            exact_listing,
            caches.Stamp(made_at, (provider.snapshot(histograms), provider.snapshot(exact_listing))),
        )
        self._listed.put(experiment, listed, made_at)
        return listed

    def _rank(
        self, ctx, experiment: str, listings: _Listings, runs: tuple[str, ...], ratio: float
    ) -> tuple[engine.Outcome, list[str]]:
        """Ranking and findings of the chosen runs (all if none), and all runs."""
        histograms, exact_listing = listings.histograms, listings.exact
        all_runs = _ranked_runs(listings, runs)
        if runs:
            histograms = {r: t for r, t in histograms.items() if r in runs}
            exact_listing = {r: t for r, t in exact_listing.items() if r in runs}
        return self._engine.rank(ctx, experiment, histograms, exact_listing, ratio), all_runs


def _ranked_runs(listings: _Listings, runs: tuple[str, ...]) -> list[str]:
    """Every run listed; ``errors.NotFoundError`` names the first of ``runs`` that is not."""
    all_runs = sorted(set(listings.histograms) | set(listings.exact))
    missing = [r for r in runs if r not in all_runs]
    if missing:
        raise errors.NotFoundError(f"unknown run {missing[0]!r}")
    return all_runs
