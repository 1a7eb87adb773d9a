"""Every writer's log, through the CLI and through a real TensorBoard on both loaders.

The story of each log (tests/writers.py): layer ``frozen`` never updated,
layer ``slow`` trained at 1e-5 x the learning rate, every other layer
trained normally.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse

import pytest
from conftest import QUIET_ENV, WRITER_NAMES


def short(layer: str) -> str:
    """``sequential/frozen`` -> ``frozen``: the fixture's layer name for every writer."""
    return layer.replace(".", "/").split("/")[-1]


def check_story(rows: list[dict], layers: list[dict], writer: str) -> None:
    params = [r for r in rows if r["role"] in ("weight", "bias")]
    assert {short(r["layer"]) for r in params} >= {"conv1", "dense", "frozen", "slow", "out"}, writer
    for r in params:
        name = short(r["layer"])
        if name == "frozen":
            assert r["status"] == "frozen", (writer, r)
        elif name == "slow" and r["role"] == "weight":
            assert r["status"] == "stagnant", (writer, r)
        elif name != "slow":
            assert r["status"] == "moving", (writer, r)
    by_layer = {short(entry["layer"]): entry for entry in layers}
    assert by_layer["frozen"]["status"] == "frozen", writer
    assert by_layer["slow"]["status"] == "stagnant", writer
    moving = [r["score"] for r in params if r["status"] == "moving"]
    slow = next(r for r in params if short(r["layer"]) == "slow" and r["role"] == "weight")
    assert slow["score"] < 1e-3 * min(moving), writer
    # Ranked most-moving first; frozen rows after every measured one.
    statuses = [r["status"] for r in rows]
    assert statuses.index("frozen") > max(i for i, s in enumerate(statuses) if s != "frozen" and s in ("moving", "stagnant"))


@pytest.mark.parametrize("writer", WRITER_NAMES)
def test_cli_tells_each_writers_story(writer_logs, writer: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tb_stagnation.cli", str(writer_logs[writer]), "--json"],
        capture_output=True, text=True, env=QUIET_ENV, check=True,
    )
    rows = json.loads(out.stdout)["rows"]
    for row in rows:
        assert {"run", "tag", "layer", "role", "status", "score", "net", "samples",
                "first_step", "last_step", "source"} <= row.keys()
    layers_by_run: dict = {}
    for r in rows:
        if r["role"] == "weight":
            layers_by_run.setdefault(r["layer"], r)
    check_story(rows, list(layers_by_run.values()), writer)


def test_cli_gate_and_formats(writer_logs, tmp_path) -> None:
    logdir = str(writer_logs["tf2"])
    gate = subprocess.run([sys.executable, "-m", "tb_stagnation.cli", logdir, "--fail-on-stagnant"],
                          capture_output=True, text=True, env=QUIET_ENV)
    assert gate.returncode == 1 and "frozen or stagnant" in gate.stderr
    assert "slow/kernel" in gate.stdout
    csv_out = subprocess.run([sys.executable, "-m", "tb_stagnation.cli", logdir, "--csv", "--role", "weight"],
                             capture_output=True, text=True, env=QUIET_ENV, check=True).stdout.splitlines()
    assert csv_out[0].startswith("run,tag,layer,role,status,score")
    assert len(csv_out) == 1 + 5
    for args in ([str(tmp_path / "missing")], [str(tmp_path)]):
        bad = subprocess.run([sys.executable, "-m", "tb_stagnation.cli", *args],
                             capture_output=True, text=True, env=QUIET_ENV)
        assert bad.returncode == 2 and "tb-stagnation:" in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture(scope="module", params=[False, True], ids=["python-loader", "rust-loader"])
def server(request, writer_logs, start_tensorboard):
    root = next(iter(writer_logs.values())).parent
    return start_tensorboard(root, load_fast=request.param)


def test_plugin_is_listed_with_its_frontend(server) -> None:
    from conftest import get_json

    status, listing, _ = get_json(server.url + "/data/plugins_listing")
    assert status == 200
    entry = listing["stagnation"]
    assert entry["enabled"] is True and entry["tab_name"] == "Stagnation"
    assert entry["loading_mechanism"] == {
        "type": "IFRAME", "module_path": "/data/plugin/stagnation/index.js"
    }


@pytest.mark.parametrize("writer", WRITER_NAMES)
def test_http_ranking_tells_each_writers_story(server, writer: str) -> None:
    run = f"{writer}/train"
    status, body, ctype = server.plugin("ranking?" + urllib.parse.urlencode({"run": run}))
    assert status == 200 and ctype.startswith("application/json")
    assert run in body["runs"]
    assert all(r["run"] == run for r in body["rows"])
    check_story(body["rows"], body["layers"], writer)


def test_http_series_has_drift_and_bands(server) -> None:
    status, ranking, _ = server.plugin("ranking?run=tf2%2Ftrain&role=weight")
    tag = ranking["rows"][0]["tag"]
    status, body, _ = server.plugin("series?" + urllib.parse.urlencode({"run": "tf2/train", "tag": tag}))
    assert status == 200
    n = len(body["steps"])
    assert n >= 2 and body["steps"] == sorted(body["steps"])
    assert len(body["drift"]) == len(body["rate"]) == len(body["percentiles"]["values"]) == n
    assert body["drift"][0] is None and all(d > 0 for d in body["drift"][1:])
    assert body["percentiles"]["bps"] == [0, 668, 1587, 3085, 5000, 6915, 8413, 9332, 10000]
    for band in body["percentiles"]["values"]:
        assert band == sorted(band)
    frozen = next(r["tag"] for r in ranking["rows"] if r["status"] == "frozen")
    _, fbody, _ = server.plugin("series?" + urllib.parse.urlencode({"run": "tf2/train", "tag": frozen}))
    assert fbody["drift"][1:] == [0.0] * (len(fbody["steps"]) - 1)


@pytest.mark.parametrize(
    "route, status",
    [
        ("ranking?run=nope", 404),
        ("series?run=nope&tag=x", 404),
        ("series?run=tf2%2Ftrain&tag=nope", 404),
        ("series?run=tf2%2Ftrain", 400),
        ("series", 400),
        ("ranking?role=wheel", 400),
        ("ranking?status=sleepy", 400),
        ("ranking?ratio=abc", 400),
        ("ranking?ratio=0", 400),
        ("ranking?ratio=nan", 400),
        ("ranking?tag=%28", 400),
        ("ranking?tag=%28a%2B%29%2B%24", 400),
        ("ranking?tag=" + "a" * 300, 400),
    ],
)
def test_http_errors_are_json(server, route: str, status: int) -> None:
    got, body, ctype = server.plugin(route)
    assert got == status, body
    assert ctype.startswith("application/json")
    assert isinstance(body.get("error"), str) and body["error"] and "Traceback" not in body["error"]


def test_http_filters(server) -> None:
    _, body, _ = server.plugin("ranking?run=torch%2Ftrain&role=bias&status=frozen")
    assert [r["tag"] for r in body["rows"]] == ["frozen.bias"]
    _, body, _ = server.plugin("ranking?run=torch%2Ftrain&tag=%5Econv")
    assert {r["tag"] for r in body["rows"]} == {"conv1.weight", "conv1.bias"}
