"""The background refresh through a real ``tensorboard`` on both loaders, a writer appending.

Once a query has an answer, a request never waits for new data to be read:
it gets the last complete answer at once, with ``as_of`` (run -> the newest
step of its data) and ``refreshing: true``, while the new answer is made in
the background; the next answer after that is complete (``refreshing:
false``) and newer, no answer is older than the one before, and ``fresh=1``
waits for the newest. (In process, the same is specified step by step in
tests/test_warm_ranking.py.)
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from test_live import TAGS, LogWriter


def _get(url: str, **headers: str) -> tuple[int, dict | None, str]:
    """(status, JSON body or None for a 304, ETag)."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read()), r.headers["ETag"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers.get("ETag", "")


def _poll_until_refreshed(url: str, old_as_of: int, timeout: float = 60) -> list[tuple[int, bool]]:
    """Every answer's (as_of of run "train", refreshing) until a complete answer newer than ``old_as_of``."""
    seen, etag, body = [], "", None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, answer, tag = _get(url, **({"If-None-Match": etag} if etag else {}))
        if status == 200:
            body, etag = answer, tag
        assert status in (200, 304) and body is not None, (status, answer)
        seen.append((body["as_of"]["train"], body["refreshing"]))
        if not body["refreshing"] and body["as_of"]["train"] > old_as_of:
            return seen
        time.sleep(0.1)
    pytest.fail(f"no complete answer newer than step {old_as_of}: {seen[-10:]}")


@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "data-server"])
def test_a_ranking_during_a_refresh_answers_from_the_last_result(tmp_path, start_tensorboard, load_fast) -> None:
    logdir = tmp_path / "logs"
    writer = LogWriter(logdir, "train")
    writer.write(range(0, 50, 5))
    tb = start_tensorboard(logdir, load_fast=load_fast)
    ranking = f"{tb.url}/data/plugin/stagnation/ranking"
    series = f"{tb.url}/data/plugin/stagnation/series?run=train&tag=dense%2Fkernel"

    status, first, _ = _get(ranking)
    assert status == 200 and (first["as_of"], first["refreshing"]) == ({"train": 45}, False)
    assert _get(series)[1]["as_of"] == {"train": 45}

    writer.write(range(50, 100, 5))
    seen = _poll_until_refreshed(ranking, 45)
    # The writer's new steps were answered first from the last result, flagged, then completely;
    # never older than the answer before.
    assert (45, True) in seen, seen
    assert seen[-1] == (95, False) and [s for s, _ in seen] == sorted(s for s, _ in seen), seen
    status, after, _ = _get(ranking)
    assert {r["tag"]: r["last_step"] for r in after["rows"]} == dict.fromkeys(TAGS, 95)
    # The series route refreshes alike.
    assert _poll_until_refreshed(series, 45)[-1] == (95, False)

    # fresh=1 waits for the newest data, whatever was answered before.
    writer.write(range(100, 110, 5))
    deadline = time.monotonic() + 60
    while (fresh := _get(ranking + "?fresh=1")[1])["as_of"]["train"] < 105:
        assert not fresh["refreshing"] and time.monotonic() < deadline, fresh["as_of"]
        time.sleep(0.2)  # until TensorBoard's loader has read the new steps
    assert (fresh["as_of"], fresh["refreshing"]) == ({"train": 105}, False)
    latest = _get(ranking)[1]
    assert (latest["as_of"], latest["refreshing"]) == ({"train": 105}, False)
