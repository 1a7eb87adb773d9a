"""The plugin's caches (``tb_stagnation.caches``): bounded in bytes, least recently used evicted.

- ``LRU`` keeps at most its budget of bytes, by the size it is told each value
  costs; a read makes a value the most recently used; a value larger than the
  whole budget is not kept; replacing a value re-counts its size.
- ``Recent`` answers a value for ``ttl`` seconds after it was made, then not.
- Budgets hold where the caches are used: a reader given a budget for two
  tags' summaries keeps two (``tests/test_incremental.py``), and a plugin whose
  answer budget holds one answer keeps one (here, through its routes).
"""

from __future__ import annotations

import json
import time

from tensorboard.backend.event_processing import data_provider as mdp
from tensorboard.backend.event_processing import plugin_event_multiplexer as mux
from tensorboard.plugins import base_plugin
from werkzeug.test import Client
from writers import write_torch

from tb_stagnation import caches, plugin, wire


def test_lru_evicts_least_recently_used_past_its_budget() -> None:
    cache = caches.LRU(10, len)
    cache.put("a", "aaaa")
    cache.put("b", "bbbb")
    assert cache.get("a") == "aaaa"  # a is now the most recently used ...
    cache.put("c", "cccc")  # ... so c evicts b
    assert cache.get("b") is None and cache.get("a") == "aaaa" and cache.get("c") == "cccc"
    assert (len(cache), cache.nbytes, cache.evictions) == (2, 8, 1)


def test_lru_counts_a_replaced_value_once_and_refuses_one_above_its_budget() -> None:
    cache = caches.LRU(10, len)
    cache.put("a", "aaaa")
    cache.put("a", "aaaaaaaa")
    assert (len(cache), cache.nbytes) == (1, 8)
    cache.put("huge", "x" * 11)
    assert cache.get("huge") is None and cache.get("a") == "aaaaaaaa" and cache.nbytes == 8
    cache.put("a", "y" * 11)  # a value grown past the budget leaves, rather than evicting all
    assert cache.get("a") is None and (len(cache), cache.nbytes) == (0, 0)


def test_recent_answers_for_its_ttl_then_not() -> None:
    recent = caches.Recent(0.2)
    recent.put("listing", 1, made_at=time.monotonic())
    recent.put("old", 2, made_at=time.monotonic() - 1.0)
    assert recent.get("listing") == 1 and recent.get("old") is None and recent.get("never") is None
    time.sleep(0.25)
    assert recent.get("listing") is None


def test_plugin_keeps_answers_within_its_budget(tmp_path, monkeypatch) -> None:
    write_torch(str(tmp_path / "logs" / "train"))
    multiplexer = mux.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path / "logs"))
    multiplexer.Reload()
    context = base_plugin.TBContext(
        data_provider=mdp.MultiplexerDataProvider(multiplexer, str(tmp_path)), logdir=str(tmp_path), sampling_hints={}
    )
    one = len(Client(plugin.StagnationPlugin(context).get_plugin_apps()["/ranking"]).get("/").data)
    monkeypatch.setattr(plugin, "ANSWER_CACHE_BYTES", int(1.5 * one))  # room for one answer, not two
    built = []
    ranking_json = wire.ranking_json
    monkeypatch.setattr(wire, "ranking_json", lambda *a, **k: built.append(1) or ranking_json(*a, **k))
    route = Client(plugin.StagnationPlugin(context).get_plugin_apps()["/ranking"])
    first = route.get("/")
    assert route.get("/").data == first.data and len(built) == 1  # kept
    assert json.loads(route.get("/?role=weight").data)["rows"] and len(built) == 2  # evicts the first ...
    again = route.get("/")  # ... which is built again, to the same bytes
    assert again.data == first.data and again.headers["ETag"] == first.headers["ETag"] and len(built) == 3
