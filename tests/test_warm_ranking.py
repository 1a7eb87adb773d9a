"""The warm ``/ranking``: one encoded answer per query and data, served as is.

- In process, a real ``StagnationPlugin`` over a real ``MultiplexerDataProvider``
  (wrapped to count ``list_tensors`` calls), through werkzeug's test client:
  the warm answer is the cold one byte for byte, gzipped alike when the client
  accepts gzip, named by a weak ETag that a revalidation turns into a 304; a
  listing stands for ``LISTING_TTL`` seconds and is shared by ``/ranking`` and
  ``/series``; new data gives a new answer and ETag once the listing is re-read.
- A real ``tensorboard`` on both loaders (Python, and the Rust data server with
  ``--load_fast true``): the same over HTTP, and a log written to while it is
  served gets a new answer that an old ETag does not hide.

No timing is asserted here; ``bench/run.py`` measures speed.
"""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import data_provider as mdp
from tensorboard.backend.event_processing import plugin_event_accumulator as acc
from tensorboard.backend.event_processing import plugin_event_multiplexer as mux
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from tb_stagnation import plugin, records

TAGS = ("conv1/kernel", "conv1/bias", "dense/kernel")


def _append(logdir: Path, steps, tags=TAGS) -> None:
    """Histogram events of ``steps`` for ``tags``, appended to the run "train"'s event file."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.histogram import summary_v2
    from tensorboard.summary.writer.record_writer import RecordWriter

    path = logdir / "train" / "events.out.tfevents.1700000000.warm"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(steps[0])
    with open(path, "ab") as f:
        writer = RecordWriter(f)
        if f.tell() == 0:
            writer.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
        for step in steps:
            for i, tag in enumerate(tags):
                values = rng.normal(0.01 * (i + 1) * step, 1.0, 300)
                event = event_pb2.Event(step=step, wall_time=1.7e9 + step,
                                        summary=summary_v2.histogram_pb(tag, values, buckets=30))
                writer.write(event.SerializeToString())


class CountingProvider(mdp.MultiplexerDataProvider):
    """The real provider, counting listings of the histograms (what a warm request used to pay).

    A listing of the data lists the plugin's own records too (``list_tensors`` of plugin
    ``stagnation``, and ``list_scalars`` for version-1 files), always together with the histograms.
    """

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.listings = 0

    def list_tensors(self, ctx=None, **kwargs):
        self.listings += kwargs.get("plugin_name") == records.HISTOGRAMS_PLUGIN_NAME
        return super().list_tensors(ctx, **kwargs)


class Served:
    """A plugin over a log that the test appends to and reloads."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        _append(logdir, range(0, 50, 5))
        self.multiplexer = mux.EventMultiplexer(size_guidance=acc.STORE_EVERYTHING_SIZE_GUIDANCE)
        self.multiplexer.AddRunsFromDirectory(str(logdir))
        self.multiplexer.Reload()
        self.provider = CountingProvider(self.multiplexer, str(logdir))
        context = base_plugin.TBContext(data_provider=self.provider, logdir=str(logdir), sampling_hints={})
        self.clients = {route: Client(app) for route, app in plugin.StagnationPlugin(context).get_plugin_apps().items()}

    def get(self, route: str, query: str = "", **headers: str):
        return self.clients[f"/{route}"].get(f"/?{query}", headers=headers)

    def add_steps(self, steps, tags=TAGS) -> None:
        _append(self.logdir, steps, tags)
        self.multiplexer.Reload()


@pytest.fixture
def served(tmp_path, monkeypatch) -> Served:
    monkeypatch.setattr(plugin, "LISTING_TTL", 3600.0)  # a listing stands unless a test says otherwise
    return Served(tmp_path / "logs")


def _last_steps(body: bytes) -> dict[str, int]:
    return {r["tag"]: r["last_step"] for r in json.loads(body)["rows"]}


def test_warm_answer_is_the_cold_one_byte_for_byte(served) -> None:
    cold = served.get("ranking")
    warm = served.get("ranking")
    assert cold.status_code == warm.status_code == 200
    assert warm.data == cold.data and _last_steps(warm.data) == dict.fromkeys(TAGS, 45)
    assert warm.headers["ETag"] == cold.headers["ETag"] and warm.headers["ETag"].startswith('W/"')
    assert warm.headers["Content-Type"] == "application/json"
    assert "Content-Encoding" not in warm.headers and warm.headers["Vary"] == "Accept-Encoding"
    assert int(warm.headers["Content-Length"]) == len(warm.data)

    zipped = [served.get("ranking", **{"Accept-Encoding": "gzip, deflate, br"}) for _ in range(2)]
    assert zipped[0].data == zipped[1].data  # compressed once, the same bytes after
    assert all(z.headers["Content-Encoding"] == "gzip" for z in zipped)
    assert gzip.decompress(zipped[0].data) == cold.data
    assert zipped[0].headers["ETag"] == cold.headers["ETag"]  # weak: one JSON, two encodings


def test_revalidation_gets_304_while_nothing_changed(served) -> None:
    first = served.get("ranking", "status=moving&status=stagnant")
    etag = first.headers["ETag"]
    again = served.get("ranking", "status=moving&status=stagnant", **{"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert again.headers["Content-Type"] == "application/json"  # TensorBoard warns on a response without one
    other = served.get("ranking", "status=moving&status=stagnant", **{"If-None-Match": 'W/"other"'})
    assert other.status_code == 200 and other.data == first.data
    # Another query is another answer with its own tag; errors stay plain, untagged JSON.
    assert served.get("ranking", "role=weight", **{"If-None-Match": etag}).status_code == 200
    error = served.get("ranking", "role=wheel", **{"If-None-Match": etag})
    assert error.status_code == 400 and "ETag" not in error.headers and "error" in json.loads(error.data)


def test_ranking_and_series_share_one_listing(served) -> None:
    served.get("ranking")
    served.get("series", "run=train&tag=dense%2Fkernel")
    served.get("ranking", "tag=conv")
    assert served.provider.listings == 1


def test_new_data_gives_a_new_answer_once_listed_again(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(plugin, "LISTING_TTL", 3.0)
    served = Served(tmp_path / "logs")
    listed_by = time.monotonic() + plugin.LISTING_TTL
    before = served.get("ranking")
    served.add_steps([50, 55], tags=["dense/kernel"])
    # Within the window the listing stands (TensorBoard itself only reloads every few seconds) ...
    assert time.monotonic() < listed_by, "the machine is too slow for this test's window"
    assert served.get("ranking").data == before.data and served.provider.listings == 1
    # ... and once it has passed, the new steps are listed: the last answer comes at once, flagged
    # as refreshing under its own ETag, while the new one is made in the background ...
    time.sleep(max(0.0, listed_by - time.monotonic()) + 0.05)
    during = served.get("ranking", **{"If-None-Match": before.headers["ETag"]})
    assert during.status_code == 200 and served.provider.listings == 2
    assert json.loads(during.data) == {**json.loads(before.data), "refreshing": True}
    assert during.headers["ETag"] != before.headers["ETag"]
    # ... and answered once made.
    after = _refreshed(served, "ranking", during.headers["ETag"])
    assert _last_steps(after.data) == {**dict.fromkeys(TAGS, 45), "dense/kernel": 55}
    assert json.loads(after.data)["as_of"] == {"train": 55}
    assert after.headers["ETag"] not in (before.headers["ETag"], during.headers["ETag"])
    series = json.loads(served.get("series", "run=train&tag=dense%2Fkernel").data)
    assert series["steps"] == list(range(0, 60, 5)) and series["as_of"] == {"train": 55}


def _refreshed(served: Served, route: str, etag: str, query: str = ""):
    """The first answer to ``route`` that is not flagged refreshing (a 304 means the flagged one stands)."""
    deadline = time.monotonic() + 30
    while True:
        answer = served.get(route, query, **{"If-None-Match": etag})
        if answer.status_code == 200 and not json.loads(answer.data)["refreshing"]:
            return answer
        assert time.monotonic() < deadline, "the background refresh never completed"
        time.sleep(0.05)


def test_fresh_waits_for_the_newest_data_and_never_goes_back(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(plugin, "LISTING_TTL", 0.0)  # every request lists the data anew
    served = Served(tmp_path / "logs")
    first = json.loads(served.get("series", "run=train&tag=conv1%2Fbias").data)
    assert (first["as_of"], first["refreshing"]) == ({"train": 45}, False)
    assert json.loads(served.get("ranking").data)["as_of"] == {"train": 45}
    served.add_steps([50])
    fresh = json.loads(served.get("ranking", "fresh=1").data)
    assert (fresh["as_of"], fresh["refreshing"]) == ({"train": 50}, False)
    assert _last_steps(json.dumps(fresh).encode()) == dict.fromkeys(TAGS, 50)
    # The series has its own last answer: flagged and old until its refresh, never older after.
    stale = json.loads(served.get("series", "run=train&tag=conv1%2Fbias").data)
    assert stale == {**first, "refreshing": True}
    assert json.loads(served.get("series", "run=train&tag=conv1%2Fbias&fresh=1").data)["as_of"] == {"train": 50}
    served.add_steps([55])
    seen = []
    for _ in range(200):
        body = json.loads(served.get("ranking").data)
        seen.append(body["as_of"]["train"])
        if not body["refreshing"] and seen[-1] == 55:
            break
        time.sleep(0.02)
    assert seen[0] == 50 and seen[-1] == 55 and seen == sorted(seen), seen
    error = served.get("ranking", "fresh=yes")
    assert error.status_code == 400 and "fresh must be 0 or 1" in json.loads(error.data)["error"]


def _get(url: str, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "data-server"])
def test_real_tensorboard_serves_gzip_304_and_new_data(tmp_path, start_tensorboard, load_fast) -> None:
    logdir = tmp_path / "logs"
    _append(logdir, range(0, 50, 5))
    tb = start_tensorboard(logdir, load_fast=load_fast)
    url = f"{tb.url}/data/plugin/stagnation/ranking"
    deadline = time.monotonic() + 60
    while (first := _get(url))[0] != 200 or len(json.loads(first[1])["rows"]) < len(TAGS):
        assert time.monotonic() < deadline, first
        time.sleep(0.5)
    _, body, headers = first
    etag = headers["ETag"]
    zipped = _get(url, **{"Accept-Encoding": "gzip"})
    assert zipped[2]["Content-Encoding"] == "gzip" and gzip.decompress(zipped[1]) == body
    status, body, headers = _get(url, **{"If-None-Match": etag})
    assert (status, body, headers["Content-Type"]) == (304, b"", "application/json")
    # TensorBoard's security middleware would print "Content-Type is required" for a 304 without one.
    assert "Content-Type is required" not in Path(tb.log.name).read_text()

    _append(logdir, [50, 55], tags=["dense/kernel"])
    deadline = time.monotonic() + 60
    flagged = None
    while True:  # 304 until TensorBoard has loaded the new steps and the listing is re-read, ...
        status, body, headers = _get(url, **{"If-None-Match": flagged or etag})
        if status == 200 and json.loads(body)["refreshing"]:
            # ... then the last answer flagged, under its own ETag, while the new one is made ...
            assert _last_steps(body)["dense/kernel"] == 45 and headers["ETag"] != etag
            flagged = headers["ETag"]
        elif status == 200 and _last_steps(body)["dense/kernel"] == 55:
            break  # ... then the new answer.
        else:
            assert status == 304 and time.monotonic() < deadline, (status, body[:200])
        time.sleep(0.5)
    assert flagged is not None and headers["ETag"] not in (etag, flagged)
