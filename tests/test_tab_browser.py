"""The Stagnation tab in a real TensorBoard, driven by a real headless Chromium.

The log directories are written here with TensorBoard's TF-free writer API (no
TensorFlow import). The first: two runs of a small numpy "training" in which some
layers move, one layer is ``frozen`` (the same array at every step), and one tag is
named like an HTML injection. The second (findings and checkpoints): safetensors
checkpoints imported with ``tb-stagnation checkpoints``, one run holding nothing
else, beside a healthy histogram run and a run of logged update ratios only. The
tests open TensorBoard's own page at ``#stagnation``, so the tab is loaded exactly
as users get it: through ``data/plugin_entry.html`` in TensorBoard's iframe, talking
to the host page.

Needs Playwright (Python) and Debian's Chromium at /usr/bin/chromium (``make
chromium``); no browser is ever downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

EVIL_TAG = "<img src=x onerror=alert(1)>"
STEPS = range(0, 200, 10)
# Layers in model order (deliberately not alphabetical: the profile follows write order).
SHAPES = {
    "conv1": ((3, 3, 4, 16), (16,)),
    "frozen": ((64, 64), (64,)),
    "dense": ((64, 64), (64,)),
    "slow": ((64, 64), (64,)),
    "out": ((64, 10), (10,)),
}
# Per-step relative speed of each layer's (first-order) change; "frozen" never changes.
SPEED = {"conv1": 1.0, "dense": 0.5, "slow": 0.002, "out": 2.0}


_clock = iter(range(10**9))


def _wall_time(step: int) -> float:
    """Strictly increasing, like a real writer's clock (model order is write order)."""
    return 1.7e9 + step + next(_clock) * 1e-3


def _histogram_event(step: int, tag: str, values: np.ndarray):
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.histogram.summary import histogram_pb

    return event_pb2.Event(step=step, wall_time=_wall_time(step), summary=histogram_pb(tag, values, buckets=30))


def _exact_event(step: int, param: str, value: float, seq: int):
    """The ``seq``-th record of ``param``'s exact update ratio, as the writers store it."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    from tb_stagnation import records

    summary = summary_pb2.Summary(value=[records.record_value(param, {records.UPDATE_RATIO: value}, seq)])
    return event_pb2.Event(step=step, wall_time=_wall_time(step), summary=summary)


class EventWriter:
    """One event file written with TensorBoard's ``RecordWriter`` on a plain file.

    TensorBoard's ``EventFileWriter`` goes through ``tensorboard.compat.tf``, which
    imports TensorFlow when it is installed.
    """

    def __init__(self, directory: Path, stamp: int = 1700000000) -> None:
        """``stamp``: the file name's time; a later one is a later file of the run, as a restarted writer makes."""
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        directory.mkdir(parents=True, exist_ok=True)
        self._records = RecordWriter(open(directory / f"events.out.tfevents.{stamp}.fixture", "wb"))
        self.add_event(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2"))

    def add_event(self, event) -> None:
        self._records.write(event.SerializeToString())

    def close(self) -> None:
        self._records.close()


def write_fixture_logs(logdir: Path) -> None:
    """Two runs, 20 histogram samples per tag, plus exact update ratios for one tag."""
    for run, lr in (("baseline", 1.0), ("small_lr", 0.1)):
        rng = np.random.default_rng(0)
        init = {
            name: (rng.normal(0, 0.1, k), np.full(b, 0.05)) for name, (k, b) in SHAPES.items()
        }
        evil0 = rng.normal(0, 1, 500)
        writer = EventWriter(logdir / run)
        prev_dense = None
        for step in STEPS:
            t = step / 10
            for name, (kernel0, bias0) in init.items():
                if name == "frozen":
                    kernel, bias = kernel0, bias0  # never updated: identical every step
                else:
                    g = 1 + 0.03 * SPEED[name] * lr * t  # weights spread out as they train
                    kernel = kernel0 * g + 0.002 * SPEED[name] * lr * t
                    bias = bias0 + 0.004 * SPEED[name] * lr * t * np.linspace(-1, 1, bias0.size)
                writer.add_event(_histogram_event(step, f"{name}/kernel", kernel))
                writer.add_event(_histogram_event(step, f"{name}/bias", bias))
                if name == "dense" and run == "baseline":
                    if prev_dense is not None:
                        ratio = np.linalg.norm(kernel - prev_dense) / np.linalg.norm(prev_dense) / 10
                        writer.add_event(_exact_event(step, "dense/kernel", float(ratio), STEPS.index(step) - 1))
                    prev_dense = kernel
            if run == "baseline":
                writer.add_event(_histogram_event(step, EVIL_TAG, evil0 * (1 + 0.05 * t)))
        writer.close()


# Checkpoints whose names give no step: the import places them in save order (axis "checkpoint").
CHECKPOINTS = ("first", "second", "third", "fourth", "fifth")


def write_checkpoint_logs(logdir: Path) -> None:
    """Three runs: ``saved`` (checkpoints only), ``healthy`` (histograms and checkpoints of
    layers that all move) and ``exact_only`` (logged update ratios only).

    Checkpoints are safetensors files imported with ``tb-stagnation checkpoints``. In
    ``saved`` their names give no step: ``dense/kernel`` drifts steadily one way,
    ``out/kernel`` swings back and forth, ``slow/kernel`` barely moves, ``frozen/kernel``
    and a tensor named like an HTML injection (role "other": behind the role filter)
    never change.
    """
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    tensors = {
        "dense/kernel": rng.normal(0, 0.1, (32, 32)),
        "out/kernel": rng.normal(0, 0.1, (32, 8)),
        "slow/kernel": rng.normal(0, 0.1, (32, 32)),
        "frozen/kernel": rng.normal(0, 0.1, (32, 32)),
        EVIL_TAG: rng.normal(0, 1, 64),
    }
    direction = rng.normal(0, 1, (32, 32))
    swing = rng.normal(0, 1, (32, 8))
    saved = logdir / "saved"
    saved.mkdir(parents=True)
    for i, name in enumerate(CHECKPOINTS):
        path = saved / f"{name}.safetensors"
        save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(path))
        os.utime(path, (1.7e9 + i, 1.7e9 + i))  # unnumbered checkpoints are ordered by modification time
        tensors["dense/kernel"] = tensors["dense/kernel"] + 2e-3 * direction
        tensors["out/kernel"] = tensors["out/kernel"] + 2e-3 * (-1) ** i * swing
        tensors["slow/kernel"] = tensors["slow/kernel"] + 1e-7 * rng.normal(0, 1, (32, 32))
    _import_checkpoints(saved)

    # Histograms every 10 steps, and a numbered checkpoint of the same tensors every 60.
    healthy = logdir / "healthy"
    writer = EventWriter(healthy)
    layers = {name: rng.normal(0, 0.1, (32, 32)) for name in ("conv1", "conv2", "dense")}
    for step in STEPS:
        weights = {f"{name}/kernel": w0 * (1 + 0.003 * step) + 1e-3 * step for name, w0 in layers.items()}
        for tag, w in weights.items():
            writer.add_event(_histogram_event(step, tag, w))
        if step % 60 == 0:
            save_file({k: v.astype(np.float32) for k, v in weights.items()}, str(healthy / f"model_{step}.safetensors"))
    writer.close()
    _import_checkpoints(healthy)

    # Exact update ratios of a parameter without histograms (8 points: the Python loader keeps 10).
    writer = EventWriter(logdir / "exact_only")
    for step in range(10, 90, 10):
        writer.add_event(_exact_event(step, "fc/kernel", 1e-3 * (1 + 0.1 * np.sin(step)), step // 10 - 1))
    writer.close()


def _import_checkpoints(directory: Path) -> None:
    """``tb-stagnation checkpoints DIRECTORY``, as a user runs it."""
    script = Path(sys.executable).with_name("tb-stagnation")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tb_stagnation.cli"]
    proc = subprocess.run([*command, "checkpoints", str(directory)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"tb-stagnation checkpoints failed:\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def checkpoint_tb_url(tmp_path_factory, start_tensorboard) -> str:
    pytest.importorskip("safetensors.numpy")
    logdir = tmp_path_factory.mktemp("checkpoints") / "logs"
    write_checkpoint_logs(logdir)
    return start_tensorboard(logdir).url


@pytest.fixture(scope="module")
def fixture_logdir(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("tab") / "logs"
    write_fixture_logs(logdir)
    return logdir


@pytest.fixture(scope="module")
def tb_url(fixture_logdir, start_tensorboard) -> str:
    tb = start_tensorboard(fixture_logdir)
    return tb if isinstance(tb, str) else tb.url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (run `make chromium`)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class ConsoleLog:
    """Every console error and uncaught page error, from the top page and the plugin iframe."""

    def __init__(self, page, allowed: list[tuple[str, str]] | None = None) -> None:
        # (substring of the message or of its source URL, reason): nothing is ignored without one.
        self.allowed = allowed or []
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        text = f"console.{msg.type}: {msg.text} @ {msg.location}"
        where = str(msg.location.get("url", "")) if isinstance(msg.location, dict) else ""
        if any(pattern in msg.text or pattern in where for pattern, _reason in self.allowed):
            return
        self.errors.append(text)


def _plugin_frame(page, timeout: float = 60_000):
    """The iframe TensorBoard creates for the plugin (data/plugin_entry.html?name=stagnation)."""
    page.wait_for_selector("iframe", state="attached", timeout=timeout)
    deadline_ms = timeout
    step = 250
    while deadline_ms > 0:
        for frame in page.frames:
            if "plugin_entry.html" in frame.url and "name=stagnation" in frame.url:
                return frame
        page.wait_for_timeout(step)
        deadline_ms -= step
    raise AssertionError(f"no stagnation iframe; frames: {[f.url for f in page.frames]}")


def test_stagnation_tab_in_tensorboard(tb_url, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1750}, device_scale_factor=1)
    page = context.new_page()
    console = ConsoleLog(page)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ranking_requests: list[str] = []
    page.on("request", lambda r: ranking_requests.append(r.url) if "/data/plugin/stagnation/ranking" in r.url else None)
    try:
        page.goto(f"{tb_url}/#stagnation", wait_until="domcontentloaded")

        # The tab is in TensorBoard's tab bar, and it is the active one.
        tab = page.get_by_role("tab", name="Stagnation")
        if not tab.count():  # TensorBoard versions that render tabs without the ARIA role
            tab = page.locator("text=Stagnation").first
        tab.first.wait_for(state="visible", timeout=60_000)

        frame = _plugin_frame(page)
        frame.wait_for_selector("table.stg-table tbody tr[data-run]", timeout=120_000)

        # Host protocol: connected to TensorBoard's page, which answered experimental.GetRuns.
        app = frame.locator("#stg-app")
        assert app.get_attribute("data-host") == "tensorboard"
        frame.wait_for_function("() => document.querySelector('#stg-app').dataset.hostRuns === '2'", timeout=30_000)

        # The role filter starts on parameters; every role is one choice away.
        role_select = frame.locator("select[aria-label='Filter by role']")
        assert role_select.input_value() == "params"
        assert frame.locator("tr[data-run].stg-nonparam").count() == 0
        role_select.select_option("all")
        frame.locator("tr[data-run].stg-nonparam").first.wait_for(timeout=10_000)

        rows = frame.eval_on_selector_all(
            "table.stg-table tbody tr[data-run]",
            "trs => trs.map(tr => ({run: tr.dataset.run, tag: tr.dataset.tag,"
            " status: tr.dataset.status, param: !tr.classList.contains('stg-nonparam')}))",
        )
        tags = {(r["run"], r["tag"]) for r in rows}
        for run in ("baseline", "small_lr"):
            for layer in SHAPES:
                for part in ("kernel", "bias"):
                    assert (run, f"{layer}/{part}") in tags, f"{run} {layer}/{part} missing: {sorted(tags)}"

        # The frozen layer is flagged frozen and ranked last among the parameter rows of its run.
        for run in ("baseline", "small_lr"):
            params = [r for r in rows if r["run"] == run and r["param"]]
            frozen = [r for r in params if r["tag"].startswith("frozen/")]
            assert frozen and all(r["status"] == "frozen" for r in frozen), frozen
            assert [r["tag"] for r in params[-len(frozen):]] == [r["tag"] for r in frozen], params
            moving = [r for r in params if r["tag"].startswith(("conv1/", "dense/", "out/"))]
            assert all(r["status"] == "moving" for r in moving), moving
        badge = frame.locator('tr[data-tag="frozen/kernel"] .stg-badge').first
        assert badge.inner_text().strip() == "frozen"

        # User data is text: the HTML-named tag shows literally and creates no element.
        evil_row = frame.locator("tr[data-run]").filter(has_text=EVIL_TAG)
        assert evil_row.count() == 1
        assert frame.locator("img").count() == 0
        assert page.locator("img[src=x]").count() == 0
        evil_row.click()  # also as the detail panel's title
        frame.locator(".stg-detail-head h2", has_text=EVIL_TAG).wait_for(timeout=30_000)
        assert frame.locator(".stg-detail-head h2").inner_text() == EVIL_TAG
        frame.wait_for_selector(".stg-charts .uplot canvas", timeout=60_000)
        assert frame.locator("img").count() == 0

        # Clicking a row draws both charts with uPlot, at a real size.
        frame.locator('tr[data-run="baseline"][data-tag="dense/kernel"]').click()
        frame.wait_for_selector(".stg-charts .uplot canvas", timeout=60_000)
        sizes = frame.eval_on_selector_all(
            ".stg-charts .stg-chart",
            "els => els.map(el => { const c = el.querySelector('.uplot canvas');"
            " return c ? [c.width, c.height, c.getBoundingClientRect().width, c.getBoundingClientRect().height] : null; })",
        )
        assert len(sizes) == 2 and all(s and min(s) > 0 for s in sizes), sizes
        assert frame.locator('tr[data-tag="dense/kernel"][aria-selected="true"]').count() == 1
        # The exact update ratio is drawn as a second line of the rate chart.
        assert frame.locator(".stg-charts .u-legend", has_text="exact update ratio").count() == 1
        # The link to TensorBoard's Distributions tab points at the TensorBoard root.
        href = frame.locator(".stg-detail-head a[target=_top]").get_attribute("href")
        assert href.startswith(f"{tb_url}/#distributions&tagFilter="), href
        # The drift-versus-depth profile is drawn too.
        assert frame.locator("section[aria-label='Drift versus depth'] .uplot canvas").count() == 1

        # Keyboard: ArrowDown moves the selection to the next row.
        frame.locator('tr[aria-selected="true"]').focus()
        frame.locator('tr[aria-selected="true"]').press("ArrowDown")
        frame.wait_for_timeout(200)
        order = [(r["run"], r["tag"]) for r in rows]
        nxt = order[order.index(("baseline", "dense/kernel")) + 1]
        sel = frame.locator('tr[aria-selected="true"]')
        assert (sel.get_attribute("data-run"), sel.get_attribute("data-tag")) == nxt
        frame.locator('tr[aria-selected="true"]').press("ArrowUp")
        frame.wait_for_selector(".stg-charts .uplot canvas", timeout=60_000)

        # Filter: a refused regex says why inline, in the route's words; a valid one filters rows,
        # case-insensitive as the route and the CLI (tests/test_tag_filter.py).
        tag_input = frame.locator("input[aria-label^='Filter tags']")
        tag_input.fill("conv1(")
        frame.locator(".stg-invalid", has_text="invalid tag regex").wait_for(timeout=10_000)
        tag_input.fill("(frozen+)+")
        frame.locator(".stg-invalid", has_text="could take unbounded time").wait_for(timeout=10_000)
        tag_input.fill("FROZEN")
        frame.wait_for_function(
            "() => [...document.querySelectorAll('tr[data-run]')].every(tr => tr.dataset.tag.startsWith('frozen/'))",
            timeout=10_000,
        )
        shown = {r for r in frame.eval_on_selector_all("tr[data-run]", "t => t.map(x => x.dataset.tag)")}
        assert shown == {"frozen/kernel", "frozen/bias"}, shown
        assert frame.locator(".stg-invalid").inner_text() == ""
        tag_input.fill("")
        frame.wait_for_function("() => document.querySelectorAll('tr[data-run]').length > 4", timeout=10_000)

        # Status chips filter; a second click shows every status again.
        frame.locator(".stg-chip", has_text="stagnant").click()
        frame.wait_for_function(
            "() => [...document.querySelectorAll('tr[data-run]')].every(tr => tr.dataset.status === 'stagnant')",
            timeout=10_000,
        )
        assert frame.locator("tr[data-run]").count() >= 1
        frame.locator(".stg-chip", has_text="stagnant").click()
        frame.wait_for_function(f"() => document.querySelectorAll('tr[data-run]').length === {len(rows)}", timeout=10_000)

        # Run chips hide and show runs.
        frame.locator(".stg-chip", has_text="small_lr").click()
        frame.wait_for_function(
            "() => [...document.querySelectorAll('tr[data-run]')].every(tr => tr.dataset.run === 'baseline')",
            timeout=10_000,
        )
        frame.locator(".stg-chip", has_text="small_lr").click()
        frame.wait_for_function(f"() => document.querySelectorAll('tr[data-run]').length === {len(rows)}", timeout=10_000)

        # Column headers sort: "last step", then "movement" (largest first), then back to rank.
        frame.locator("th button", has_text="movement").click()
        assert frame.locator("th[aria-sort=descending]", has_text="movement").count() == 1
        scores = frame.eval_on_selector_all(
            "tr[data-run] .stg-score-val", "els => els.map(e => e.textContent === '0' ? 0 : Number(e.textContent))"
        )
        assert scores == sorted(scores, reverse=True), scores
        frame.locator("th button", has_text="#").click()
        assert frame.locator("th[aria-sort=ascending]", has_text="#").count() == 1

        # Dark mode follows TensorBoard's own switch (the class on the parent page's body).
        page.evaluate("document.body.classList.add('dark-mode')")
        frame.wait_for_function("() => document.documentElement.classList.contains('dark')", timeout=10_000)
        page.evaluate("document.body.classList.remove('dark-mode')")
        frame.wait_for_function("() => !document.documentElement.classList.contains('dark')", timeout=10_000)

        # TensorBoard's reload button broadcasts experimental.DataReloaded: the tab answers
        # and fetches the ranking again.
        before = len(ranking_requests)
        reloads = int(app.get_attribute("data-reloads") or 0)
        page.locator("button.reload-button").click()
        frame.wait_for_function(
            f"() => Number(document.querySelector('#stg-app').dataset.reloads || 0) > {reloads}", timeout=60_000
        )
        deadline = 60_000
        while len(ranking_requests) == before and deadline > 0:
            page.wait_for_timeout(250)
            deadline -= 250
        assert len(ranking_requests) > before, "no ranking refetch after DataReloaded"
        frame.wait_for_selector("table.stg-table tbody tr[data-run]", timeout=60_000)

        # Selection and filters survive a reload of the whole TensorBoard page.
        frame.locator('tr[data-run="baseline"][data-tag="conv1/kernel"]').click()
        frame.wait_for_selector(".stg-charts .uplot canvas", timeout=60_000)
        page.reload(wait_until="domcontentloaded")
        frame = _plugin_frame(page)
        frame.wait_for_selector('tr[data-tag="conv1/kernel"][aria-selected="true"]', timeout=120_000)
        frame.wait_for_selector(".stg-charts .uplot canvas", timeout=60_000)
        page.wait_for_timeout(500)

        page.screenshot(path=str(ARTIFACTS / "stagnation-tab.png"), full_page=False)

        # The link opens the same tag in TensorBoard's own Distributions tab, tag filter set.
        frame.locator(".stg-detail-head a[target=_top]").click()
        page.wait_for_url("**/#distributions&tagFilter=*", timeout=30_000)
        assert "tagFilter=%5Econv1%2Fkernel%24" in page.url, page.url

        assert dialogs == [], dialogs
        assert console.errors == [], "\n".join(console.errors)
    finally:
        context.close()


@pytest.fixture(scope="module")
def prefixed_tb_url(fixture_logdir, start_tensorboard) -> str:
    """The root of a TensorBoard under --path_prefix /tb, prefix included."""
    return start_tensorboard(fixture_logdir, path_prefix="/tb").url


def test_path_prefix(prefixed_tb_url, browser):
    """Under --path_prefix every URL stays relative: data loads, the link keeps the prefix."""
    base = prefixed_tb_url
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    console = ConsoleLog(
        page,
        allowed=[(
            "/font-roboto/",
            "TensorBoard's own index.html loads its Roboto fonts from absolute /font-roboto/ URLs,"
            " which 404 under --path_prefix (TensorBoard 2.21); not the plugin's requests",
        )],
    )
    try:
        page.goto(f"{base}/#stagnation", wait_until="domcontentloaded")
        frame = _plugin_frame(page)
        frame.wait_for_selector("tr[data-run]", timeout=120_000)
        frame.locator('tr[data-tag="slow/kernel"]').first.click()
        frame.wait_for_selector(".stg-charts .uplot canvas", timeout=60_000)
        href = frame.locator(".stg-detail-head a[target=_top]").get_attribute("href")
        assert href.startswith(f"{base}/#distributions&tagFilter="), href
        assert base.endswith("/tb"), base
        assert console.errors == [], "\n".join(console.errors)
    finally:
        context.close()


def test_error_state_shows_server_message(tb_url, browser):
    """A 4xx answer's `error` field is shown, readable, not a blank page."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    console = ConsoleLog(page)
    try:
        # Standalone (no TensorBoard host around it), with a ratio the server rejects.
        page.goto(f"{tb_url}/data/plugin_entry.html?name=stagnation", wait_until="domcontentloaded")
        page.wait_for_selector("table.stg-table tbody tr[data-run]", timeout=120_000)
        page.route("**/data/plugin/stagnation/ranking*", lambda route: route.fulfill(
            status=404, content_type="application/json", body=json.dumps({"error": "unknown run 'nope'"})))
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector(".stg-error", timeout=60_000)
        text = page.locator(".stg-error").inner_text()
        assert "unknown run 'nope'" in text and "HTTP 404" in text, text
        # Chromium itself logs the failed fetch ("Failed to load resource: ... 404"): that
        # message is the point of this test; any other error is not.
        assert [e for e in console.errors if "status of 404" not in e] == [], console.errors
    finally:
        context.close()


# In the plugin's frame: answers to ranking requests with ratio=0.5 arrive late, and not
# aborted, so only the tab's own guard can keep them from overwriting a newer answer.
_LATE_ANSWERS = """
(() => {
  const fetch = window.fetch.bind(window);
  window.fetch = (url, opts) => {
    if (!String(url).includes("ratio=0.5")) return fetch(url, opts);
    return new Promise((done) => setTimeout(done, 1500))
      .then(() => fetch(url, { ...opts, signal: undefined }))
      .then((answer) => { window.lateAnswered = true; return answer; });
  };
})();
"""


def test_older_answer_never_overwrites_newer(tb_url, browser):
    """Ratio 0.5, then straight back to the default: the late 0.5 ranking is never shown."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    console = ConsoleLog(page, allowed=[("/favicon.ico", "the plugin page alone has no favicon: Chromium asks the server for one")])
    try:
        page.add_init_script(_LATE_ANSWERS)
        page.goto(f"{tb_url}/data/plugin_entry.html?name=stagnation", wait_until="domcontentloaded")
        page.wait_for_selector("tr[data-run]", timeout=120_000)
        ratio = page.locator("input[aria-label='Stagnant threshold ratio']")
        counts = page.locator("[aria-label='Filter by status']").inner_text()
        for value in ("0.5", "0.01"):
            ratio.fill(value)
            ratio.dispatch_event("change")
        page.wait_for_function("() => window.lateAnswered === true", timeout=30_000)
        page.wait_for_timeout(500)
        assert ratio.input_value() == "0.01"
        assert page.locator("[aria-label='Filter by status']").inner_text() == counts
        assert console.errors == [], "\n".join(console.errors)
    finally:
        context.close()


def _in_viewport(locator, height: int) -> bool:
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def test_findings_first(checkpoint_tb_url, browser):
    """Findings, run by run, visible on load above the table; a click selects the finding's layer."""
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    page = context.new_page()
    console = ConsoleLog(page)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(f"{checkpoint_tb_url}/#stagnation", wait_until="domcontentloaded")
        frame = _plugin_frame(page)
        frame.wait_for_selector("tr[data-run]", timeout=120_000)
        findings = frame.locator("section[aria-label='Findings']")
        # On load, without scrolling, above the table.
        assert _in_viewport(findings, 800), findings.bounding_box()
        assert findings.bounding_box()["y"] < frame.locator("section[aria-label='Ranking']").bounding_box()["y"]
        page.screenshot(path=str(ARTIFACTS / "stagnation-findings.png"), full_page=False)

        # Grouped by run: what was found, or that nothing was.
        assert frame.locator(".stg-healthy[data-run='healthy']").inner_text() == "healthy: no findings"
        kinds = frame.eval_on_selector_all("ul[data-run='saved'] .stg-finding", "els => els.map(e => e.dataset.kind)")
        assert {"frozen", "stagnant"} <= set(kinds), kinds

        # A tag named like HTML is text in a finding too.
        evil = frame.locator(".stg-finding", has_text=EVIL_TAG)
        assert evil.count() == 1
        assert frame.locator("img").count() == 0 and page.locator("img[src=x]").count() == 0

        # A click selects the finding's layer (its first tag's row) and scrolls it into view.
        frame.locator(".stg-finding[data-kind='stagnant']").click()
        row = frame.locator("tr[data-run='saved'][data-tag='slow/kernel'][aria-selected='true']")
        row.wait_for(timeout=10_000)
        page.wait_for_timeout(300)
        assert _in_viewport(row, 800), row.bounding_box()
        frame.locator(".stg-detail-head h2", has_text="slow/kernel").wait_for(timeout=30_000)
        assert frame.locator(".stg-finding[data-kind='stagnant'][aria-current='true']").count() == 1

        # The HTML-named tensor has role "other", behind the default role filter: its
        # finding opens the filter to every role to select it.
        assert frame.locator("select[aria-label='Filter by role']").input_value() == "params"
        evil.click()
        frame.locator("tr[aria-selected='true']").filter(has_text=EVIL_TAG).wait_for(timeout=10_000)
        assert frame.locator("select[aria-label='Filter by role']").input_value() == "all"
        frame.locator(".stg-detail-head h2", has_text=EVIL_TAG).wait_for(timeout=30_000)
        assert frame.locator(".stg-detail-head h2").inner_text() == EVIL_TAG
        assert frame.locator("img").count() == 0 and page.locator("img[src=x]").count() == 0

        assert dialogs == [], dialogs
        assert console.errors == [], "\n".join(console.errors)
    finally:
        context.close()


def _plugin_json(url: str, path: str):
    """An answer of the plugin's routes, as the tab gets it."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/data/plugin/stagnation/{path}", timeout=60) as resp:
        return json.load(resp)


def _unit_charts(url: str, run: str, tag: str) -> list[str]:
    """The unit view's charts the detail of ``run``/``tag`` draws: those its series answer has data for."""
    import urllib.parse

    units = _plugin_json(url, "series?" + urllib.parse.urlencode({"run": run, "tag": tag})).get("units")
    if not units:
        return []
    return [name for name, has in (("units-sorted", units["sorted"]["movement"]), ("units-pairs", units["pairs"]["steps"])) if has]


def test_checkpoint_only_run(checkpoint_tb_url, browser):
    """Checkpoint data only: update ratio and update cosine charts, no histogram charts; mixed and exact-only rows too."""
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    page = context.new_page()
    console = ConsoleLog(page)
    try:
        page.goto(f"{checkpoint_tb_url}/#stagnation", wait_until="domcontentloaded")
        frame = _plugin_frame(page)
        row = frame.locator("tr[data-run='saved'][data-tag='out/kernel']")
        row.wait_for(timeout=120_000)
        assert row.locator("td").last.inner_text() == "checkpoint"
        row.click()
        for chart in ("checkpoint-ratio", "checkpoint-cosine"):
            frame.wait_for_selector(f"[data-chart='{chart}'] .uplot canvas", timeout=60_000)
        shown = frame.eval_on_selector_all(".stg-charts [data-chart]", "els => els.map(e => e.dataset.chart)")
        # No histogram to chart; the unit view where the import measured the tensor's units.
        expected = ["checkpoint-ratio", "checkpoint-cosine", *_unit_charts(checkpoint_tb_url, "saved", "out/kernel")]
        assert shown == expected, shown
        ratio = frame.locator("[data-chart='checkpoint-ratio']")
        # The x axis counts checkpoints, not steps: its caption says so (its label, drawn on the canvas, too).
        assert "real steps are unknown" in ratio.inner_text()
        assert ratio.locator(".u-legend", has_text="stagnant threshold").count() == 1
        cosine = frame.locator("[data-chart='checkpoint-cosine']").inner_text()
        assert "near 1 = steady drift" in cosine and "negative = oscillation" in cosine, cosine
        # No histograms, so nothing to open in the Distributions tab.
        assert frame.locator(".stg-detail-head a[target=_top]").count() == 0
        frame.locator("[data-chart='checkpoint-cosine']").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "stagnation-checkpoints.png"), full_page=False)

        # A parameter with histograms and checkpoints: the checkpoint charts beside the histogram ones.
        frame.locator("tr[data-run='healthy'][data-tag='conv1/kernel']").click()
        frame.wait_for_selector("[data-chart='distribution'] .uplot canvas", timeout=60_000)
        shown = frame.eval_on_selector_all(".stg-charts [data-chart]", "els => els.map(e => e.dataset.chart)")
        units = _unit_charts(checkpoint_tb_url, "healthy", "conv1/kernel")
        assert shown == ["distribution", "rate", "checkpoint-ratio", "checkpoint-cosine", *units], shown
        assert frame.locator(".stg-detail-head a[target=_top]").count() == 1
        assert "real steps are unknown" not in frame.locator("[data-chart='checkpoint-ratio']").inner_text()

        # Exact ratios only: the ratio chart alone.
        frame.locator("tr[data-run='exact_only'][data-tag='fc/kernel']").click()
        frame.locator("[data-chart='rate']", has_text="Exact update ratio per step").wait_for(timeout=60_000)
        frame.wait_for_selector("[data-chart='rate'] .uplot canvas", timeout=60_000)
        shown = frame.eval_on_selector_all(".stg-charts [data-chart]", "els => els.map(e => e.dataset.chart)")
        assert shown == ["rate"], shown
        assert console.errors == [], "\n".join(console.errors)
    finally:
        context.close()


@pytest.fixture(scope="module")
def demo_tb(demo_logdir, start_tensorboard):
    """The demo's logs (conftest's ``demo_logdir``), served as ``make demo`` serves them."""
    return start_tensorboard(demo_logdir, extra=["--samples_per_plugin", "stagnation=0"])


def _fully_shown(frame, locator) -> bool:
    """Whether ``locator`` lies wholly in the part of the plugin's iframe the window shows."""
    view = frame.frame_element().bounding_box()
    bottom = min(view["y"] + view["height"], frame.page.viewport_size["height"])
    box = locator.bounding_box()
    return box is not None and box["y"] >= view["y"] and box["y"] + box["height"] <= bottom


def _legend(frame, chart: str) -> dict[str, str]:
    """A chart's legend: series label -> the value shown beside it."""
    return dict(frame.eval_on_selector_all(
        f"[data-chart='{chart}'] .u-legend tr.u-series",
        "trs => trs.map(tr => [tr.querySelector('.u-label').textContent, tr.querySelector('.u-value').textContent])",
    ))


def _tab_number(v: float) -> str:
    """A number below 1e-3 as the tab prints it (format.ts fmt: three significant digits)."""
    assert 0 < v < 1e-3, v
    mantissa, exponent = f"{v:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _shown_ranks(frame) -> list[int]:
    return frame.eval_on_selector_all("tr[data-run] td:first-child", "tds => tds.map(td => Number(td.textContent))")


def test_demo_first_look(demo_tb, browser):
    """What a newcomer meets after ``make demo`` in a 1400x900 window.

    The # column counts the shown rows; a click brings the row's charts into view with the
    row still in sight; the detail says which source scored the row against which threshold,
    and shades "stagnant since" only where the row is stagnant; a frozen tensor's checkpoint
    chart draws the run's checkpoint threshold and its direction chart says there were no
    updates; a link that selects a row opens scrolled to it; drift versus depth gives each
    architecture its own chart.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    console = ConsoleLog(page)
    try:
        page.goto(f"{demo_tb.url}/#stagnation", wait_until="domcontentloaded")
        frame = _plugin_frame(page)
        frame.wait_for_selector("tr[data-run]", timeout=120_000)

        # Parameters by default, gradients hidden: the numbers still run 1, 2, 3, ...
        ranks = _shown_ranks(frame)
        assert ranks == list(range(1, len(ranks) + 1)) and len(ranks) > 50, ranks
        frame.locator(".stg-chip", has_text="vanishing").click()  # hide a run
        frame.wait_for_function(f"() => document.querySelectorAll('tr[data-run]').length < {len(ranks)}", timeout=10_000)
        fewer = _shown_ranks(frame)
        assert fewer == list(range(1, len(fewer) + 1)), fewer
        frame.locator(".stg-chip", has_text="vanishing").click()
        frame.wait_for_function(f"() => document.querySelectorAll('tr[data-run]').length === {len(ranks)}", timeout=10_000)

        # A healthy layer: a click brings its charts into view, the row stays in sight above them.
        row = frame.locator("tr[data-run='healthy'][data-tag='conv2/kernel']")
        row.click()
        frame.wait_for_selector("[data-chart='rate'] .uplot canvas", timeout=60_000)
        page.wait_for_timeout(500)  # the page scrolls once the charts have their width
        for chart in ("distribution", "rate"):
            assert _fully_shown(frame, frame.locator(f"[data-chart='{chart}'] .uplot canvas")), chart
        assert _fully_shown(frame, row)
        series = demo_tb.plugin("series?run=healthy&tag=conv2%2Fkernel")[1]
        assert series["status"] == "moving" and series["stagnant_since"] is None, series["stagnant_since"]
        head = frame.locator(".stg-detail-head").inner_text()
        assert "moving" in head and "stagnant since" not in head, head
        note = frame.locator(".stg-source-note").inner_text()
        threshold = _tab_number(series["thresholds"][series["source"]])
        assert f"Scored by source {series['source']}" in note, note
        assert f"against {threshold}, the run's stagnant threshold for source {series['source']}" in note, note
        # Each line of the rate chart is drawn with its own source's threshold.
        legend = _legend(frame, "rate")
        assert legend["stagnant threshold (histogram)"] == _tab_number(series["thresholds"]["histogram"]), legend
        assert legend["stagnant threshold (exact)"] == _tab_number(series["thresholds"]["exact"]), legend
        page.screenshot(path=str(ARTIFACTS / "demo-healthy-conv2-kernel.png"))

        # A frozen tensor: the badge says it all; the checkpoint chart has the checkpoint threshold.
        frozen = frame.locator("tr[data-run='frozen_layer'][data-tag='conv3/kernel']")
        frozen.click()
        frame.wait_for_selector("[data-chart='checkpoint-ratio'] .uplot canvas", timeout=60_000)
        page.wait_for_timeout(500)
        assert frame.locator(".stg-detail-head .stg-badge").inner_text() == "frozen"
        assert "stagnant since" not in frame.locator(".stg-detail-head").inner_text()
        series = demo_tb.plugin("series?run=frozen_layer&tag=conv3%2Fkernel")[1]
        assert series["thresholds"]["checkpoint"] is not None, series["thresholds"]
        legend = _legend(frame, "checkpoint-ratio")
        assert legend["stagnant threshold (checkpoint)"] == _tab_number(series["thresholds"]["checkpoint"]), legend
        cosine = frame.locator("[data-chart='checkpoint-cosine']")
        assert "No updates" in cosine.inner_text() and cosine.locator("canvas").count() == 0
        assert _fully_shown(frame, frame.locator("[data-chart='distribution'] .uplot canvas"))
        assert _fully_shown(frame, frozen)
        frame.locator("[data-chart='checkpoint-ratio']").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "demo-frozen-layer-checkpoints.png"))

        # Drift versus depth: the CNN runs share a chart, the MLP and the batch-norm nets have their own.
        groups = frame.eval_on_selector_all(
            "section[aria-label='Drift versus depth'] [data-runs]", "els => els.map(e => JSON.parse(e.dataset.runs))"
        )
        assert groups == [["batchnorm", "bn_frozen"], ["frozen_layer", "healthy", "tiny_lr"], ["vanishing"]], groups
        assert frame.locator("section[aria-label='Drift versus depth'] .uplot canvas").count() == 3

        # A link that selects a row opens scrolled to it, its charts in view.
        link = page.url
        assert "p.stagnation.sel=" in link, link
        linked = context.new_page()
        linked_console = ConsoleLog(linked)
        linked.goto(link, wait_until="domcontentloaded")
        frame = _plugin_frame(linked)
        selected = frame.locator("tr[data-run='frozen_layer'][data-tag='conv3/kernel'][aria-selected='true']")
        selected.wait_for(timeout=120_000)
        frame.wait_for_selector("[data-chart='distribution'] .uplot canvas", timeout=60_000)
        linked.wait_for_timeout(500)
        assert _fully_shown(frame, selected)
        assert _fully_shown(frame, frame.locator("[data-chart='distribution'] .uplot canvas"))
        assert console.errors + linked_console.errors == [], "\n".join(console.errors + linked_console.errors)
    finally:
        context.close()


SCREENS = Path("/work/notes/screens")
# The Llama run of conftest's llama_blocks: what each block's tensors do.
LLAMA_MODULES = (
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    "input_layernorm.weight", "post_attention_layernorm.weight",
)


def _llama_frozen(block: int, module: str) -> bool:
    """Blocks 0-1 frozen whole, block 2's norms, block 3's MLP (see conftest.llama_blocks)."""
    return block in (0, 1) or (block == 2 and "layernorm" in module) or (block == 3 and module.startswith("mlp."))


@pytest.fixture(scope="module")
def llama_tb(llama_blocks, start_tensorboard):
    return start_tensorboard(llama_blocks)


def _screens(page, frame, name: str) -> None:
    """Screenshots of the page as it is, light and dark (TensorBoard's own dark mode), into SCREENS."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}-light.png"))
    page.evaluate("document.body.classList.add('dark-mode')")
    frame.wait_for_function("() => document.documentElement.classList.contains('dark')", timeout=10_000)
    page.wait_for_timeout(300)  # the charts redraw in the dark theme's colours
    page.screenshot(path=str(SCREENS / f"{name}-dark.png"))
    page.evaluate("document.body.classList.remove('dark-mode')")
    frame.wait_for_function("() => !document.documentElement.classList.contains('dark')", timeout=10_000)


@contextlib.contextmanager
def _tab(browser, url: str):
    """The Stagnation tab of the TensorBoard at ``url`` in a fresh 1400x1000 window: (page, its frame); no console error allowed."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    console = ConsoleLog(page)
    try:
        page.goto(f"{url}/#stagnation", wait_until="domcontentloaded")
        yield page, _plugin_frame(page)
        assert console.errors == [], "\n".join(console.errors)
    finally:
        context.close()


def test_block_heatmap(llama_tb, browser):
    """A Llama's blocks x modules: blocks in model order, every tensor a cell, the frozen ones marked; a click selects."""
    with _tab(browser, llama_tb.url) as (page, frame):
        heatmap = frame.locator(".stg-heatmap")
        heatmap.first.wait_for(timeout=120_000)
        assert heatmap.count() == 1  # the Trainer's own scalars run has no blocks
        run = heatmap.get_attribute("data-run")
        blocks = frame.eval_on_selector_all(".stg-heatmap tbody tr", "trs => trs.map(tr => tr.dataset.block)")
        assert blocks == [f"model.layers.{i}" for i in range(4)], blocks
        columns = frame.eval_on_selector_all(".stg-heat-col", "ths => ths.map(th => th.dataset.module)")
        assert columns == list(LLAMA_MODULES), columns  # by kind: q/k/v/o, gate/up/down, norms (not as stored)
        # Columns come grouped under their module (self_attn, mlp), their header saying what they are.
        groups = frame.eval_on_selector_all(".stg-heat-group", "ths => ths.map(th => th.textContent)")
        assert "self_attn" in groups and "mlp" in groups, groups
        cells = frame.eval_on_selector_all(
            ".stg-heatmap tbody tr",
            """trs => trs.map(tr => Array.from(tr.querySelectorAll('.stg-heat-cell'),
                 c => [c.dataset.tag, c.dataset.status, c.style.background]))""",
        )
        for i, row in enumerate(cells):
            assert len(row) == len(LLAMA_MODULES), row
            assert [tag for tag, _, _ in row] == [f"model.layers.{i}.{m}" for m in columns], row
            for (tag, status, background), module in zip(row, columns):
                if _llama_frozen(i, module):
                    assert status == "frozen" and background == "", (tag, status, background)
                else:
                    assert status != "frozen" and background.startswith("rgb("), (tag, status, background)
        # The cell's title names the tensor in full; the ranking agrees with the cells.
        ranking = llama_tb.plugin("ranking")[1]
        statuses = {r["tag"]: r["status"] for r in ranking["rows"] if r["run"] == run}
        assert all(statuses[tag] == status for row in cells for tag, status, _ in row)

        # A click selects the tensor, as a click on its row does: the row, the detail, the cell marked.
        tag = "model.layers.2.self_attn.q_proj.weight"
        cell = frame.locator(f".stg-heat-cell[data-tag='{tag}']")
        assert cell.get_attribute("title").startswith(tag + "\n")
        cell.click()
        frame.locator(f"tr[data-run='{run}'][data-tag='{tag}'][aria-selected='true']").wait_for(timeout=10_000)
        frame.locator(".stg-detail-head h2", has_text=tag).wait_for(timeout=10_000)
        frame.wait_for_selector("[data-chart='checkpoint-ratio'] .uplot canvas", timeout=60_000)
        assert frame.locator(".stg-heat-cell[aria-current='true']").get_attribute("data-tag") == tag
        assert "p.stagnation.sel=" in page.url
        heatmap.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        _screens(page, frame, "heatmap-llama")


@pytest.fixture(scope="module")
def dead_units_tb(tmp_path_factory, start_tensorboard):
    """tests/test_units.py's PyTorch CNN (SGD) with conv1's output channels 0-3 and fc1's units 0-10 dead,
    its checkpoints imported."""
    pytest.importorskip("torch")
    from test_units import _cnn

    root = tmp_path_factory.mktemp("dead_units") / "logs"
    _cnn(str(root / "cnn"), dead=True, optimizer="sgd")
    _import_checkpoints(root / "cnn")
    return start_tensorboard(root)


def test_unit_view(dead_units_tb, browser):
    """A tensor with dead units: its units sorted by movement against the dead line, the dead ones listed as ranges."""
    with _tab(browser, dead_units_tb.url) as (page, frame):
        for tag, listed in (("fc1.weight", "11 of 32 (0-10)"), ("conv1.weight", "4 of 16 (0-3)")):
            frame.locator(f"tr[data-run='cnn'][data-tag='{tag}']").click(timeout=120_000)
            frame.locator(".stg-detail-head h2", has_text=tag).wait_for(timeout=10_000)
            dead = frame.locator(".stg-dead-units")
            dead.wait_for(timeout=60_000)
            assert listed in dead.inner_text(), dead.inner_text()
            series = dead_units_tb.plugin(f"series?run=cnn&tag={tag}")[1]
            assert dead.get_attribute("data-dead") == str(len(series["units"]["dead"]))
            for chart in ("units-sorted", "units-pairs"):
                frame.wait_for_selector(f"[data-chart='{chart}'] .uplot canvas", timeout=60_000)
            legend = _legend(frame, "units-sorted")
            assert "dead below" in legend and any(label.startswith("dead ") for label in legend), legend
        assert "output channel" in frame.locator("[data-chart='units-sorted'] .stg-chart-title").inner_text().lower()
        frame.locator("[data-chart='units-sorted']").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        _screens(page, frame, "units-conv1")


def write_dying_relu(logdir: Path) -> None:
    """PyTorch's SummaryWriter (whose buckets hold exact zeros alone): a ReLU output whose share of zeros
    rises from half (healthy) to all but 2% by step 60 and stays, beside a weight that moves."""
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(3)
    writer = SummaryWriter(str(logdir / "relu"))
    weight = rng.normal(0, 0.1, (32, 32))
    for step in range(0, 130, 10):
        dead = min(0.98, 0.5 + step / 120)  # the share of units that output exactly 0
        out = np.maximum(rng.normal(0.5, 0.5, 4096), 1e-3)
        out[: int(dead * out.size)] = 0.0
        writer.add_histogram("fc2.output", out, step)
        weight = weight + 1e-3 * rng.normal(0, 1, weight.shape)
        writer.add_histogram("fc2.weight", weight, step)
    writer.close()


def test_zero_share_chart(tmp_path_factory, start_tensorboard, browser):
    """An activation's share of exact zeros per step, with the dying_relu line, in the detail of its finding."""
    logdir = tmp_path_factory.mktemp("dying") / "logs"
    write_dying_relu(logdir)
    tb = start_tensorboard(logdir)
    with _tab(browser, tb.url) as (page, frame):
        finding = frame.locator(".stg-finding[data-kind='dying_relu']")
        finding.click(timeout=120_000)  # selects the activation, showing every role
        frame.locator("tr[data-tag='fc2.output'][aria-selected='true']").wait_for(timeout=10_000)
        frame.wait_for_selector("[data-chart='zero-share'] .uplot canvas", timeout=60_000)
        series = tb.plugin("series?run=relu&tag=fc2.output")[1]
        legend = _legend(frame, "zero-share")
        assert legend["dying_relu threshold"] == f"{series['thresholds']['zero_share'] * 100:g}%", legend
        assert "dying_relu" in frame.locator("[data-chart='zero-share'] .stg-chart-cap").inner_text()
        frame.locator("[data-chart='zero-share']").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        _screens(page, frame, "zero-share")
        # A weight's zeros mean nothing: no such chart.
        frame.locator("tr[data-tag='fc2.weight']").click()
        frame.locator(".stg-detail-head h2", has_text="fc2.weight").wait_for(timeout=10_000)
        frame.wait_for_selector("[data-chart='rate'] .uplot canvas", timeout=60_000)
        assert frame.locator("[data-chart='zero-share']").count() == 0


LIVE_LAYERS = 40


def write_live_steps(run: Path, steps: range, stamp: int) -> None:
    """Histograms of LIVE_LAYERS layers at ``steps``, in a new event file of ``run`` (a training that goes on)."""
    rng = np.random.default_rng(stamp)
    writer = EventWriter(run, stamp)
    for step in steps:
        for i in range(LIVE_LAYERS):
            values = rng.normal(0, 0.1, 256) * (1 + 0.002 * (i + 1) * step)  # each layer spreads at its own pace
            writer.add_event(_histogram_event(step, f"layer{i:02d}/kernel", values))
    writer.close()


def _wait_loaded(url: str, run: str, tag: str, step: int, timeout: float = 120.0) -> None:
    """Until TensorBoard's loader has read ``step`` of ``tag`` (asked of its own histograms route)."""
    import time
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"run": run, "tag": tag})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/data/plugin/histograms/histograms?{query}", timeout=30) as resp:
            if any(event[1] == step for event in json.load(resp)):
                return
        time.sleep(0.5)
    raise AssertionError(f"TensorBoard never loaded step {step} of {run}/{tag}")


def test_background_refresh_keeps_the_selection(tmp_path_factory, start_tensorboard, browser):
    """New steps while the tab is open: it says "updating…", answers stay quick, and the newer ranking
    swaps in with the same row selected, the table where it was and the charts never blanked. Only the
    tab's own reload button asks for fresh data (``fresh=1``)."""
    run = tmp_path_factory.mktemp("live") / "logs" / "live"
    write_live_steps(run, range(0, 100, 10), 1700000000)
    tb = start_tensorboard(run.parent)
    answers = []
    with _tab(browser, tb.url) as (page, frame):
        page.on("response", lambda r: answers.append(r) if "/data/plugin/stagnation/ranking" in r.url else None)
        tag = "layer05/kernel"  # slow: far down the ranking, so the table scrolls to it
        row = frame.locator(f"tr[data-run='live'][data-tag='{tag}']")
        row.wait_for(timeout=120_000)
        frame.locator(".stg-as-of", has_text="data to step 90").wait_for(timeout=30_000)
        row.click()
        frame.wait_for_selector("[data-chart='rate'] .uplot canvas", timeout=60_000)
        page.wait_for_timeout(500)
        top = frame.eval_on_selector(".stg-table-wrap", "e => e.scrollTop")
        assert top > 0, "the selected row should be scrolled to"
        # From now on, record what the header says and whether the detail ever blanks to "Loading".
        frame.evaluate(
            """() => {
                window.stgSeen = {statuses: [], blanked: false};
                new MutationObserver(() => {
                    window.stgSeen.statuses.push(document.querySelector('.stg-updating').textContent);
                    if (document.querySelector('.stg-detail-body .stg-loading')) window.stgSeen.blanked = true;
                }).observe(document.querySelector('#stg-app'), {subtree: true, childList: true, characterData: true});
            }"""
        )
        write_live_steps(run, range(100, 200, 10), 1700000100)
        _wait_loaded(tb.url, "live", "layer00/kernel", 190)
        page.locator("button.reload-button").click()  # what TensorBoard's auto-reload does every 30 s
        frame.locator(".stg-as-of", has_text="data to step 190").wait_for(timeout=120_000)
        frame.wait_for_function("() => !document.querySelector('.stg-updating').textContent", timeout=60_000)

        assert frame.locator("tr[aria-selected='true']").get_attribute("data-tag") == tag
        assert abs(frame.eval_on_selector(".stg-table-wrap", "e => e.scrollTop") - top) <= 1
        frame.locator(".stg-detail-head h2", has_text=tag).wait_for(timeout=10_000)
        # The charts swap to the new series once it lands.
        frame.wait_for_selector(".stg-detail-body[data-last-step='190'] [data-chart='rate'] .uplot canvas", timeout=60_000)
        seen = frame.evaluate("window.stgSeen")
        assert "updating…" in seen["statuses"] and not seen["blanked"], seen
        bodies = [a.json() for a in answers]
        assert any(b["refreshing"] for b in bodies), "the server never answered from its last result"
        assert bodies[-1]["refreshing"] is False and bodies[-1]["as_of"] == {"live": 190}
        assert not [a.url for a in answers if "fresh=1" in a.url]
        _screens(page, frame, "refreshed-selection")

        # The tab's reload button: the one request that waits for the newest data.
        count = len(answers)
        frame.locator("button.stg-reload").click()
        deadline = 30_000
        while len(answers) == count and deadline > 0:
            page.wait_for_timeout(250)
            deadline -= 250
        assert [a.url for a in answers[count:] if "fresh=1" in a.url], [a.url for a in answers[count:]]
        assert frame.locator("tr[aria-selected='true']").get_attribute("data-tag") == tag


if __name__ == "__main__":  # write the fixture log directory for manual inspection
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "logs/tab-fixture")
    shutil.rmtree(target, ignore_errors=True)
    write_fixture_logs(target)
    print(target)
