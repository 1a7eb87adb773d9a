"""The plugin's own data as TensorBoard's loaders keep it: a sample, never a reason to misread it.

TensorBoard keeps a reservoir sample of each tag: its Python loader
(``--load_fast=false``, and every ``s3://`` or ``--logdir_spec`` log) keeps
10 points of a plugin it does not know, the Rust data server 100 tensors.
One log directory holds every source of the plugin's own data, each with
more records per tensor than the Python loader keeps, all training the same
story (a layer that trains, one at 1e-5 of the learning rate, a frozen one):

- ``hf_import``: 20 Hugging Face Trainer checkpoints (steps 10-200, real
  safetensors) imported with ``tb-stagnation checkpoints`` in two goes (the
  second numbers on from the first);
- ``torch``: ``TorchUpdateRatioTracker``, 15 snapshots; ``torch_long``: 120, more
  than the Rust loader keeps too;
- ``keras``: ``KerasUpdateRatioCallback`` in ``model.fit``, 16 snapshots;
- ``lightning`` and ``hf_callback``: the two trainers' ``UpdateRatioCallback``, 15 each;
- ``version_1``: a checkpoint import as tb-stagnation wrote it before records
  (one scalar tag per quantity, each sampled on its own by the loader).

Real ``tensorboard`` processes serve it on both loaders with their default
reservoirs; what they rank must be what ``tb-stagnation DIR --json`` ranks
from every record, and where the Python loader dropped records, the ranking,
the series and the tab say so with the flag that keeps them all.

Run as ``python tests/test_thinned.py SOURCE DIR`` it writes one source's
training logs (the session fixture runs each in its own process, so no
framework's global state reaches another test).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_tab_browser import _plugin_frame, browser  # noqa: F401 (browser: the shared Chromium fixture)

HERE = Path(__file__).parent
EVERY = 2  # optimizer steps between snapshots of the training-time writers
STEPS = 30  # ... so each writes 15 records a tensor (16 for Keras' 32 steps), above the Python loader's 10
CHECKPOINT_STEPS = 200  # the Trainer saves every 10 steps: 20 checkpoints
FIRST_IMPORT = 12  # checkpoints imported by the first run of the import; the second imports the rest
PYTHON_KEEPS = 10  # TensorBoard's Python loader, per tag of a plugin it does not know
RUST_KEEPS = 100  # TensorBoard's data server, per tensor tag
KEEPS = {"python": PYTHON_KEEPS, "rust": RUST_KEEPS}
LONG_STEPS = 120  # torch_long: a snapshot every step
KEEP_ALL = "--samples_per_plugin stagnation=0"
LOADERS = ("python", "rust")


# ------------------------------------------------------------------ writing the sources


def write_torch(root: Path, steps: int = STEPS, every: int = EVERY) -> None:
    from integrations_models import Net, data, optimizer
    from torch.utils.tensorboard import SummaryWriter

    from tb_stagnation.summary import TorchUpdateRatioTracker

    net = Net()
    adam = optimizer(net)
    x, y = data()
    with SummaryWriter(str(root)) as writer:
        tracker = TorchUpdateRatioTracker(net.named_parameters(), writer, every=every)
        tracker.step(0)
        for step in range(1, steps + 1):
            batch = slice((step % 8) * 8, (step % 8) * 8 + 8)
            adam.zero_grad()
            net(x[batch], y[batch])["loss"].backward()
            adam.step()
            tracker.step(step, log_gradients=True)


def write_keras(root: Path) -> None:
    import keras

    from tb_stagnation.summary import KerasUpdateRatioCallback

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh", name="hidden"),
            keras.layers.Dense(16, activation="tanh", name="middle", trainable=False),
            keras.layers.Dense(1, name="out"),
        ],
        name="net",
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = np.sin(x.sum(axis=1, keepdims=True))
    callback = KerasUpdateRatioCallback(str(root), every=EVERY)  # into root/train
    model.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False, callbacks=[callback])  # 32 steps


def write_lightning(root: Path) -> None:
    import lightning.pytorch as pl
    from integrations_models import LitNet, loader

    from tb_stagnation.integrations.lightning import UpdateRatioCallback

    trainer = pl.Trainer(
        default_root_dir=root, accelerator="cpu", max_steps=STEPS, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=EVERY,
        callbacks=[UpdateRatioCallback(every=EVERY)],
    )
    trainer.fit(LitNet(), loader())


def write_hf_callback(root: Path) -> None:
    from integrations_models import Net, examples, optimizer
    from transformers import Trainer, TrainingArguments

    from tb_stagnation.integrations.transformers import UpdateRatioCallback

    net = Net()
    args = TrainingArguments(
        output_dir=str(root), max_steps=STEPS, per_device_train_batch_size=8, use_cpu=True,
        report_to="tensorboard", save_strategy="no", logging_steps=EVERY, disable_tqdm=True,
        lr_scheduler_type="constant",
    )
    Trainer(
        model=net, args=args, train_dataset=examples(), optimizers=(optimizer(net), None),
        callbacks=[UpdateRatioCallback(every=EVERY)],
    ).train()


WRITERS = {
    "torch": write_torch,
    "torch_long": lambda root: write_torch(root, steps=LONG_STEPS, every=1),
    "keras": write_keras,
    "lightning": write_lightning,
    "hf_callback": write_hf_callback,
}


def write_version_1(run_dir: Path, params: dict[str, float], steps: list[int], rms: float = 0.5) -> None:
    """A checkpoint import as tb-stagnation wrote it before records (content version 1).

    One rank-0 float32 scalar per quantity under ``stagnation/checkpoint/<param>/<quantity>``,
    data class SCALAR, metadata naming the quantity on every value; ``rms`` at every
    checkpoint, ``change`` and ``update_ratio`` from the second, ``update_cosine`` from the
    third, so each quantity's tag holds a different number of points (a loader samples
    each on its own). ``params``: name -> update ratio per step (0: frozen).
    """
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    from tensorboard.util import tensor_util

    def value(param: str, quantity: str, number: float) -> summary_pb2.Summary.Value:
        content = {"version": 1, "param": param, "quantity": quantity, "source": "checkpoint"}
        return summary_pb2.Summary.Value(
            tag=f"stagnation/checkpoint/{param}/{quantity}",
            metadata=summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(
                    plugin_name="stagnation", content=json.dumps(content, sort_keys=True).encode()
                ),
                data_class=summary_pb2.DATA_CLASS_SCALAR,
            ),
            tensor=tensor_util.make_tensor_proto(np.float32(number)),
        )

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"events.out.tfevents.1700000000.v1.{steps[0]}-{steps[-1]}.tb-stagnation-checkpoints"
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        writer.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
        for i, step in enumerate(steps):
            values = []
            for param, ratio in params.items():
                values.append(value(param, "rms", rms))
                if i >= 1:
                    values += [value(param, "change", ratio * rms), value(param, "update_ratio", ratio)]
                if i >= 2 and ratio:
                    values.append(value(param, "update_cosine", 0.9))
            event = event_pb2.Event(wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary(value=values))
            writer.write(event.SerializeToString())


VERSION_1 = {"dense.weight": 1e-3, "dense.bias": 2e-3, "slow.weight": 1e-8, "frozen.weight": 0.0}
VERSION_1_STATUSES = {"dense.weight": "moving", "dense.bias": "moving", "slow.weight": "stagnant", "frozen.weight": "frozen"}
CHECKPOINTS = list(range(10, CHECKPOINT_STEPS + 1, 10))


def checkpoints(*args: str) -> str:
    """``tb-stagnation checkpoints ARGS`` in this process; its stderr (it must succeed)."""
    from tb_stagnation import cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["checkpoints", *args])
    assert code == 0, err.getvalue()
    return err.getvalue()


def import_in_two_goes(output_dir: Path) -> None:
    """Import the first FIRST_IMPORT checkpoints, then (as a user re-running it later) the rest."""
    later = output_dir.parent / "later"
    later.mkdir()
    for step in CHECKPOINTS[FIRST_IMPORT:]:
        (output_dir / f"checkpoint-{step}").rename(later / f"checkpoint-{step}")
    checkpoints(str(output_dir))
    for step in CHECKPOINTS[FIRST_IMPORT:]:
        (later / f"checkpoint-{step}").rename(output_dir / f"checkpoint-{step}")
    later.rmdir()
    assert "imported 8 checkpoint(s)" in checkpoints(str(output_dir))


@pytest.fixture(scope="session")
def logdir(tmp_path_factory) -> Path:
    from conftest import QUIET_ENV

    root = tmp_path_factory.mktemp("thinned")
    env = {**QUIET_ENV, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    procs = {
        "hf_import": [sys.executable, str(HERE / "checkpoint_writers.py"), "hf", str(root / "hf_import"), str(CHECKPOINT_STEPS)],
        **{name: [sys.executable, __file__, name, str(root / name)] for name in WRITERS},
    }
    running = {
        name: subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, argv in procs.items()
    }
    for name, proc in running.items():
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{name} failed:\n{out[-3000:]}"
    import_in_two_goes(root / "hf_import")
    write_version_1(root / "version_1", VERSION_1, CHECKPOINTS)
    return root


# ------------------------------------------------------------------ reading it back


def cli_json(logdir: Path) -> dict:
    """``tb-stagnation LOGDIR --json``: every record, read by the CLI's own reader."""
    script = Path(sys.executable).with_name("tb-stagnation")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tb_stagnation.cli"]
    proc = subprocess.run([*command, str(logdir), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def expected(logdir) -> dict:
    return cli_json(logdir)


@pytest.fixture(scope="session")
def written(logdir) -> dict[str, dict[str, int]]:
    """run -> records each exact series holds in the files (the CLI reads them all), source/param keyed."""
    from tb_stagnation.measure import exact_series
    from tb_stagnation.sources import eventfile

    return {
        run: {f"{source}/{param}": series.kept for source, params in sources.items() for param, series in params.items()}
        for run, sources in exact_series.collect_exact(eventfile.read_logdir(str(logdir)).exact).items()
    }


def loaded_ranking(board, rows: int, timeout: float = 120) -> dict:
    """The ranking once TensorBoard has loaded every run (``rows`` of them) and two answers agree."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        status, body, _ = board.plugin("ranking")
        assert status == 200, body
        if len(body["rows"]) == rows and body == last:
            return body
        last = body
        time.sleep(1.5)
    raise AssertionError(f"TensorBoard on {board.url} did not settle on {rows} rows: {len((last or {}).get('rows', []))}")


@pytest.fixture(scope="session")
def boards(logdir, expected, start_tensorboard) -> dict[str, tuple[object, dict]]:
    """loader -> (a TensorBoard with its default reservoirs, its settled ranking)."""
    out = {}
    for loader in LOADERS:
        board = start_tensorboard(logdir, load_fast=loader == "rust")
        out[loader] = (board, loaded_ranking(board, len(expected["rows"])))
    return out


def statuses(body: dict) -> dict[tuple[str, str], str]:
    return {(r["run"], r["tag"]): r["status"] for r in body["rows"]}


def findings(body: dict, messages: bool) -> list[tuple]:
    """Each finding's run, kind, tags and layers (and its sentence, where every record was read)."""
    return [
        (f["run"], f["kind"], tuple(f["tags"]), tuple(f["layers"]), *([f["message"], f["since_step"]] if messages else []))
        for f in body["findings"]
    ]


def run_of(body: dict, prefix: str) -> str:
    (run,) = [r for r in body["runs"] if r.split("/")[0] == prefix]
    return run


# ------------------------------------------------------------------ tests


def test_every_source_writes_more_records_than_the_python_loader_keeps(written, expected) -> None:
    counts = {run.split("/")[0]: Counter(series.values()) for run, series in written.items()}
    assert counts == {
        "hf_import": Counter({20: 8}),  # 4 layers x weight and bias, 20 checkpoints each
        "torch": Counter({15: 8}),
        "torch_long": Counter({LONG_STEPS: 8}),
        "keras": Counter({16: 6}),
        "lightning": Counter({15: 8}),
        "hf_callback": Counter({15: 8}),
        "version_1": Counter({20: 4}),
    }
    by_run = {}
    for row in expected["rows"]:
        by_run.setdefault(row["run"].split("/")[0], {})[row["layer"].replace("/", ".").split(".")[-1]] = row["status"]
    # The CLI, reading every record, tells the story each source trained.
    story = {"dense": "moving", "fast": "moving", "out": "moving", "hidden": "moving", "slow": "stagnant",
             "frozen": "frozen", "middle": "frozen"}
    for run, layers in by_run.items():
        assert layers == {layer: story[layer] for layer in layers}, run
    assert not [f for f in expected["findings"] if f["kind"] == "nonfinite"]


@pytest.mark.parametrize("loader", LOADERS)
def test_both_loaders_rank_like_the_cli_with_their_default_reservoirs(boards, expected, loader) -> None:
    _, body = boards[loader]
    assert statuses(body) == statuses(expected)
    assert not [r for r in body["rows"] if r["status"] == "nonfinite" or r["nonfinite_since"] is not None]
    # Every run's findings name the same problems in the same tags. Where the loader kept every
    # record they are the same sentences, figures and steps; elsewhere their figures (checkpoints
    # counted, medians) are those of the records it kept. A version-1 run cannot tell.
    assert findings(body, messages=False) == findings(expected, messages=False)
    whole = [run for run in body["runs"] if run not in body["thinned"] and not run.startswith("version_1")]
    assert len(whole) == {"python": 0, "rust": 5}[loader]
    for run in whole:
        mine, cli = ([f for f in findings(b, messages=True) if f[0] == run] for b in (body, expected))
        assert mine == cli


@pytest.mark.parametrize("loader", LOADERS)
def test_each_loader_says_what_it_dropped_and_how_to_keep_it(boards, written, loader) -> None:
    _, body = boards[loader]
    keeps = KEEPS[loader]
    thinned = {
        run: {"kept": keeps * len(short), "written": sum(short), "series": len(short)}
        for run, series in written.items()
        for short in [[n for n in series.values() if n > keeps]]
        if max(series.values()) > keeps
        and not run.startswith("version_1")  # version-1 files carry no record numbers: nothing to tell
    }
    assert body["thinned"] == thinned
    assert len(thinned) == {"python": 6, "rust": 1}[loader]  # the Rust loader: torch_long only
    assert body["definitions"]["keep_all_flag"] == KEEP_ALL
    assert KEEP_ALL in body["definitions"]["thinned"]


@pytest.mark.parametrize("loader", LOADERS)
def test_a_thinned_import_still_has_every_quantity_at_every_kept_step(boards, loader) -> None:
    board, body = boards[loader]
    run = run_of(body, "hf_import")
    status, series, _ = board.plugin(f"series?run={run}&tag=net.frozen.weight")
    assert status == 200 and series["status"] == "frozen"
    checkpoint = series["checkpoint"]
    kept = PYTHON_KEEPS if loader == "python" else len(CHECKPOINTS)
    assert len(checkpoint["steps"]) == kept and set(checkpoint["steps"]) <= set(CHECKPOINTS)
    assert checkpoint["thinned"] == ({"kept": kept, "written": len(CHECKPOINTS)} if loader == "python" else None)
    assert None not in checkpoint["rms"]  # one record: a kept step has all its quantities
    first = checkpoint["steps"][0] == CHECKPOINTS[0]  # the first checkpoint has no change yet
    assert checkpoint["change"] == [None] * first + [0.0] * (kept - first)


@pytest.mark.parametrize("loader", LOADERS)
def test_the_flag_keeps_every_record_on_both_loaders(logdir, expected, start_tensorboard, loader) -> None:
    board = start_tensorboard(logdir, load_fast=loader == "rust", extra=KEEP_ALL.split())
    body = loaded_ranking(board, len(expected["rows"]))
    assert body["thinned"] == {}
    assert statuses(body) == statuses(expected)
    assert findings(body, messages=True) == findings(expected, messages=True)


def test_tensorboard_takes_a_sample_count_not_all(tmp_path) -> None:
    """TensorBoard 2.21 parses ``--samples_per_plugin`` values as integers (0: keep all), so the
    flag the tab names is ``stagnation=0``; this notices if ``all`` becomes accepted."""
    from conftest import QUIET_ENV

    proc = subprocess.run(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path), "--samples_per_plugin", "stagnation=all"],
        env=QUIET_ENV, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "samples_per_plugin" in proc.stderr


@pytest.mark.parametrize("loader", LOADERS)
def test_version_1_files_still_read(boards, loader) -> None:
    board, body = boards[loader]
    run = run_of(body, "version_1")
    assert {r["tag"]: r["status"] for r in body["rows"] if r["run"] == run} == VERSION_1_STATUSES
    status, series, _ = board.plugin(f"series?run={run}&tag=frozen.weight")
    assert status == 200
    checkpoint = series["checkpoint"]
    assert checkpoint["thinned"] is None  # no record numbers: what was written is unknown
    if loader == "python":  # each quantity sampled on its own: steps where one is missing
        assert len(checkpoint["steps"]) > PYTHON_KEEPS and None in checkpoint["rms"]
    else:
        assert checkpoint["steps"] == CHECKPOINTS and None not in checkpoint["rms"]


def test_a_second_import_numbers_on_from_the_first(logdir) -> None:
    from tb_stagnation.checkpoints import imported

    (run_dir,) = (logdir / "hf_import" / "runs").iterdir()
    done = imported.imported(str(run_dir))
    assert len(done.files) == 2 and sorted(done.steps) == CHECKPOINTS
    assert done.records == {f"net.{layer}.{kind}": len(CHECKPOINTS) for layer in ("dense", "frozen", "slow", "out")
                            for kind in ("weight", "bias")}


def test_an_import_of_version_1_continues_in_records(tmp_path) -> None:
    from tb_stagnation import records
    from tb_stagnation.checkpoints import imported
    from tb_stagnation.measure import exact_series
    from tb_stagnation.sources import eventfile

    write_version_1(tmp_path, VERSION_1, CHECKPOINTS[:FIRST_IMPORT])
    done = imported.imported(str(tmp_path))
    assert sorted(done.steps) == CHECKPOINTS[:FIRST_IMPORT] and done.axis == records.STEP
    assert done.records == {param: FIRST_IMPORT for param in VERSION_1}
    points = {
        param: [(step, {records.PARAM_RMS: 0.5, records.CHANGE: ratio * 0.5, records.UPDATE_RATIO: ratio})
                for step in CHECKPOINTS[FIRST_IMPORT:]]
        for param, ratio in VERSION_1.items()
    }
    imported.write(str(tmp_path), points, records.STEP, done.records)
    assert imported.imported(str(tmp_path)).records == {param: len(CHECKPOINTS) for param in VERSION_1}
    series = exact_series.collect_exact(eventfile.read_logdir(str(tmp_path)).exact)["."][records.CHECKPOINT]
    for param, s in series.items():
        assert s.steps.tolist() == CHECKPOINTS and (s.kept, s.written) == (len(CHECKPOINTS), len(CHECKPOINTS))
        assert not s.nonfinite and s.frozen == (VERSION_1[param] == 0)


def test_a_missing_sample_is_absent_and_a_real_nan_is_nonfinite() -> None:
    """Version 1 through a loader that kept different steps of each quantity, and records with a NaN."""
    from tb_stagnation import records
    from tb_stagnation.measure import exact_series
    from tb_stagnation.samples import ExactTag

    def old(quantity: str, points: list[tuple[int, float]]) -> ExactTag:
        content = json.dumps({"version": 1, "param": "w", "quantity": quantity}).encode()
        return ExactTag(content, [s for s, _ in points], [np.array([v]) for _, v in points])

    def record(seq: int, **quantities: float) -> np.ndarray:
        return np.frombuffer(records.record_value("v", quantities, seq).tensor.tensor_content)

    points = {"run": {
        "r": old("update_ratio", [(10, 0.0), (30, 0.0)]),
        "s": old("rms", [(20, 0.5), (30, 0.5)]),
        "v": ExactTag(records.create_summary_metadata("v").plugin_data.content, [10, 30, 40],
                      [record(0, update_ratio=1e-3, rms=0.5), record(2, update_ratio=1e-3), record(3, rms=float("nan"))]),
    }}
    data = exact_series.collect_exact(points)["run"][records.EXACT]
    w, v = data["w"], data["v"]
    assert w.steps.tolist() == [10, 20, 30] and np.isnan(w.rms[0]) and np.isnan(w.update_ratio[1])
    assert not w.nonfinite and w.frozen and (w.kept, w.written, w.thinned) == (3, 3, False)
    assert v.steps.tolist() == [10, 30, 40] and np.isnan(v.rms[1])  # not measured at 30
    assert v.nonfinite and v.first_nonfinite_step == 40  # the NaN the weights held
    assert (v.kept, v.written, v.thinned) == (3, 4, True)  # records 0, 2, 3 of 4: one dropped


def open_tab(browser, board):  # noqa: F811 (browser: the fixture)
    """A page on TensorBoard's own UI at the Stagnation tab, once its table is drawn; (page, the tab's frame)."""
    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    page.goto(f"{board.url}/#stagnation", wait_until="domcontentloaded")
    frame = _plugin_frame(page)
    frame.wait_for_selector("table.stg-table tbody tr[data-run]", timeout=120_000)
    return page, frame


def test_the_tab_says_so_once_and_the_detail_view_in_one_line(boards, browser) -> None:  # noqa: F811
    board, body = boards["python"]
    page, frame = open_tab(browser, board)
    try:
        notice = frame.locator(".stg-thinned")
        assert notice.count() == 1
        total = {key: sum(t[key] for t in body["thinned"].values()) for key in ("kept", "written")}
        text = " ".join(notice.inner_text().split())
        assert f"{total['kept']} of {total['written']} records" in text and KEEP_ALL in text
        assert notice.bounding_box()["y"] < frame.locator("table.stg-table").bounding_box()["y"]  # above the table

        run = run_of(body, "hf_import")
        frame.locator(f'tr[data-run="{run}"][data-tag="net.frozen.weight"]').click()
        frame.locator("[data-chart='checkpoint-ratio']").wait_for(timeout=60_000)
        line = frame.locator(".stg-thinned-note")
        assert line.count() == 1
        assert f"kept {PYTHON_KEEPS} of {len(CHECKPOINTS)} checkpoint records" in line.inner_text()
        assert KEEP_ALL in line.inner_text()
    finally:
        page.close()

    page, frame = open_tab(browser, boards["rust"][0])  # it dropped records of torch_long only
    try:
        text = " ".join(frame.locator(".stg-thinned").inner_text().split())
        assert f"{RUST_KEEPS * 8} of {LONG_STEPS * 8} records written for 8 tensors in run torch_long" in text
        frame.locator(f'tr[data-run="{run}"][data-tag="net.frozen.weight"]').click()
        frame.locator("[data-chart='checkpoint-ratio']").wait_for(timeout=60_000)
        assert frame.locator(".stg-thinned-note").count() == 0
    finally:
        page.close()


if __name__ == "__main__":
    WRITERS[sys.argv[1]](Path(sys.argv[2]))
