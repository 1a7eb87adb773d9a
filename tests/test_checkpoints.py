"""`tb-stagnation checkpoints`: exact movement from the checkpoints real frameworks keep.

Each framework trains the story of tests/checkpoint_writers.py (a frozen
layer, a layer at 1e-5 x the learning rate, two ordinary ones) with its own
checkpointing; the import must rank them frozen / stagnant / moving, log
the ratios numpy computes from the same files, and add nothing when re-run.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import HERE, QUIET_ENV, write_in_processes

from tb_stagnation import cli, engine, records
from tb_stagnation.measure import exact_series
from tb_stagnation.checkpoints import formats, imported
from tb_stagnation.sources import eventfile
from tb_stagnation.verdict import matching
from tb_stagnation.verdict.vocabulary import Source, Status

WRITERS = ("lightning", "hf", "hf_sharded", "torch", "tf2", "tf2_counter", "tf1", "keras", "keras_archive")
# framework -> (run directory the movement goes into, steps, the names it is logged under)
EXPECTED = {
    "lightning": ("lightning_logs/version_0", [10, 20, 30], "{layer}.{var}"),
    "hf": ("runs/*", [10, 20, 30], "net.{layer}.{var}"),
    "hf_sharded": ("runs/*", [10, 20, 30], "net.{layer}.{var}"),
    "torch": (".", [0, 10, 20, 30], "{layer}.{var}"),
    "tf2": (".", [0, 10, 20, 30], "net/{layer}/{var}"),
    "tf1": (".", [0, 10, 20, 30], "{layer}/{var}"),
    "keras": ("logs/train", [0, 1, 2], "net/{layer}/{var}"),
}
VARIABLES = {  # framework naming of (kernel, bias)
    "lightning": ("weight", "bias"), "hf": ("weight", "bias"), "hf_sharded": ("weight", "bias"),
    "torch": ("weight", "bias"), "tf2": ("kernel", "bias"), "tf1": ("weights", "biases"),
    "keras": ("kernel", "bias"),
}
# Biases initialised at 0 move "fast" relative to their own tiny norm even at 1e-5 x the
# learning rate (see README): the slow bias is asserted stagnant only where it starts non-zero.
NONZERO_BIAS = {"lightning", "hf", "hf_sharded", "torch", "tf1"}


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """framework -> a directory its real training wrote checkpoints and events into (read-only use)."""
    return write_in_processes(HERE / "checkpoint_writers.py", WRITERS, tmp_path_factory.mktemp("checkpoints"))


def fresh(trained: dict[str, Path], name: str, tmp_path: Path) -> Path:
    """A private copy of one framework's training output, to import into."""
    return Path(shutil.copytree(trained[name], tmp_path / name, symlinks=True))


def run(*args: str) -> tuple[int, str]:
    """``tb-stagnation ARGS`` in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, err.getvalue()


def imported_series(logdir: Path) -> dict[str, dict[str, object]]:
    """run -> param -> checkpoint series, as the CLI reads them."""
    return {run: sources.get(records.CHECKPOINT, {}) for run, sources in exact_series.collect_exact(eventfile.read_logdir(str(logdir)).exact).items()}


def reference(name: str, directory: Path, steps: list[int]) -> list[dict[str, np.ndarray]]:
    """Every floating tensor of each checkpoint, read plainly with the framework's own loader."""
    if name in ("hf", "hf_sharded"):
        from safetensors.numpy import load_file

        return [
            {k: v for f in sorted((directory / f"checkpoint-{s}").glob("*.safetensors")) for k, v in load_file(f).items()}
            for s in steps
        ]
    if name in ("lightning", "torch"):
        import torch

        files = sorted((directory / "lightning_logs/version_0/checkpoints").glob("*.ckpt")) if name == "lightning" else [
            directory / f"model_{s}.pt" for s in steps]
        class Hyper:  # the writer's own hyperparameter class, whose module (its __main__) is gone
            def __init__(self, *args, **kwargs) -> None:
                pass

        with torch.serialization.safe_globals([(Hyper, "__main__.Hyper")]):
            loaded = [torch.load(f, weights_only=True) for f in files]
        states = [d["state_dict"] if "state_dict" in d else d for d in loaded]
        return [{k: v.numpy() for k, v in sd.items() if v.is_floating_point()} for sd in states]
    if name in ("tf1", "tf2"):
        import tensorflow as tf

        prefixes = [str(directory / f"model.ckpt-{s}") for s in steps] if name == "tf1" else [
            str(directory / f"ckpt-{i + 1}") for i in range(len(steps))]
        out = []
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        for prefix in prefixes:
            r = tf.train.load_checkpoint(prefix)
            own = {}  # TF2 keys a variable by its first path, which changes once the optimizer tracks it
            if name == "tf2":
                graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(r.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
                own = {a.checkpoint_key: a.full_name for node in graph.nodes for a in node.attributes}
            out.append({own.get(k, k): r.get_tensor(k) for k, d in r.get_variable_to_dtype_map().items() if d.is_floating})
        return out
    import h5py

    out = []
    for s in steps:
        with h5py.File(directory / f"ckpt/model.{s + 1:02d}.weights.h5") as f:
            found = {}
            f.visititems(lambda k, v: found.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) and v.dtype.kind == "f" else None)
            out.append(found)
    return out


def expected_quantities(states: list[np.ndarray], steps: list[int]) -> tuple[list[float], list[float], list[float]]:
    """(rms at every step, ratio per pair, cosine per pair of pairs), by plain numpy in float64.

    A ratio from a zero tensor and a cosine involving a zero update are undefined: NaN.
    """

    def over(num: float, den: float) -> float:
        return float(num / den) if den else float("nan")

    w = [s.astype(np.float64) for s in states]
    rms = [np.sqrt(np.mean(x**2)) for x in w]
    ratio = [over(np.linalg.norm(b - a), np.linalg.norm(a) * (t1 - t0)) for a, b, t0, t1 in zip(w, w[1:], steps, steps[1:])]
    d = [b - a for a, b in zip(w, w[1:])]
    cosine = [over(p.ravel() @ q.ravel(), np.linalg.norm(p) * np.linalg.norm(q)) for p, q in zip(d, d[1:])]
    return rms, ratio, cosine


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_framework_ranks_frozen_slow_and_ordinary_layers_from_its_checkpoints(trained, tmp_path, name) -> None:
    directory = fresh(trained, name, tmp_path)
    code, err = run("checkpoints", directory)
    assert code == 0, err
    run_pattern, steps, pattern = EXPECTED[name]
    (run_dir,) = [directory] if run_pattern == "." else directory.glob(run_pattern)
    assert len(imported.files(str(run_dir))) == 1, err  # beside the training's own events
    run_name = os.path.relpath(run_dir, directory)

    result = engine.analyse_logdir(str(directory)).ranking
    series = imported_series(directory)[run_name]
    kernel, bias = VARIABLES[name]
    param = lambda layer, var: pattern.format(layer=layer, var=var)  # noqa: E731
    assert set(series) == {param(layer, var) for layer in ("dense", "frozen", "slow", "out") for var in (kernel, bias)}
    row_of = {r.tag: r for r in result.rows if r.run == run_name}
    tag_of = matching.match_exact(row_of, series)  # where a histogram of the parameter exists, its row
    rows = {p: row_of[tag_of.get(p, p)] for p in series}
    assert rows[param("frozen", kernel)].status == rows[param("frozen", bias)].status == Status.FROZEN
    assert rows[param("slow", kernel)].status == Status.STAGNANT
    if name in NONZERO_BIAS:
        assert rows[param("slow", bias)].status == Status.STAGNANT
    for layer in ("dense", "out"):
        assert rows[param(layer, kernel)].status == Status.MOVING
    assert {r.source for r in rows.values()} == {Source.CHECKPOINT}
    assert {r.axis for r in rows.values()} == {records.EPOCH if name == "keras" else records.STEP}

    # The logged figures are numpy's on the same files: each series is one tensor's.
    states = reference(name, directory, steps)
    for p, s in series.items():
        assert s.steps.tolist() == steps
        assert any(_same_figures(s, [st[k] for st in states], steps) for k in states[0] if all(k in st for st in states)), p

    # Re-running adds nothing.
    code, err = run("checkpoints", directory)
    assert code == 0 and "up to date" in err
    assert len(imported.files(str(run_dir))) == 1


def _same_figures(series, values: list[np.ndarray], steps: list[int]) -> bool:
    """Whether ``series`` logs numpy's RMS, ratio and cosine of this tensor (rtol 1e-5)."""
    if values[0].shape != values[-1].shape:
        return False
    rms, ratio, cosine = expected_quantities(values, steps)
    if not np.allclose(series.rms, rms, rtol=1e-5, atol=0):
        return False
    if np.linalg.norm(values[0]) == 0:  # no ratio where the first norm is 0
        return True
    if not np.allclose(series.update_ratio[1:], ratio, rtol=1e-5, atol=0):
        return False
    return series.frozen or np.allclose(series.cosine[2:], cosine, rtol=1e-5, atol=1e-7)


def test_names_meet_the_histograms_of_the_same_parameters(trained, tmp_path) -> None:
    """Lightning logs `model.dense.weight` histograms; its checkpoints say `model.dense.weight` too."""
    for name in ("lightning", "keras", "tf1", "tf2", "torch"):
        directory = fresh(trained, name, tmp_path)
        assert run("checkpoints", directory)[0] == 0
        result = engine.analyse_logdir(str(directory)).ranking
        checkpoint_rows = [r for r in result.rows if r.source == Source.CHECKPOINT]
        assert len(checkpoint_rows) == 8
        # Each checkpoint row is the histogram row of the same parameter: it has both figures.
        assert all(np.isfinite(r.histogram_score) or r.status == Status.FROZEN for r in checkpoint_rows), name
        assert not [r for r in result.rows if r.source == Source.HISTOGRAM and r.role != "gradient"], name


def test_keras_archives_are_read_like_their_weights(trained, tmp_path) -> None:
    """``.keras`` zips hold ``model.weights.h5``: the same names and epochs as ``.weights.h5`` files."""
    directory = fresh(trained, "keras_archive", tmp_path)
    assert run("checkpoints", directory)[0] == 0
    series = imported_series(directory)["logs/train"]
    assert set(series) == {f"net/{layer}/{var}" for layer in ("dense", "frozen", "slow", "out") for var in ("kernel", "bias")}
    assert all(s.steps.tolist() == [0, 1, 2] and s.axis == records.EPOCH for s in series.values())
    result = engine.analyse_logdir(str(directory)).ranking
    status = {r.tag: r.status for r in result.rows}
    assert status["net/frozen/kernel"] == Status.FROZEN and status["net/dense/kernel"] == Status.MOVING


def test_new_checkpoints_extend_the_series_as_a_full_import_would(trained, tmp_path) -> None:
    directory = fresh(trained, "hf", tmp_path)
    later = tmp_path / "later"
    shutil.move(directory / "checkpoint-30", later)
    assert run("checkpoints", directory)[0] == 0
    shutil.move(later, directory / "checkpoint-30")
    code, err = run("checkpoints", directory)
    assert code == 0 and "imported 1 checkpoint" in err, err
    incremental = imported_series(directory)

    full = fresh(trained, "hf", tmp_path / "full")
    assert run("checkpoints", full)[0] == 0
    for run_name, params in imported_series(full).items():
        for p, s in params.items():
            t = incremental[run_name][p]
            assert t.steps.tolist() == s.steps.tolist() == [10, 20, 30]
            for q in ("update_ratio", "rms", "change", "cosine"):
                np.testing.assert_array_equal(getattr(t, q), getattr(s, q), err_msg=f"{p} {q}")
    (run_dir,) = directory.glob("runs/*")
    assert len(imported.files(str(run_dir))) == 2


def test_tf2_save_counter_is_checkpoint_order_and_said_so(trained, tmp_path) -> None:
    directory = fresh(trained, "tf2_counter", tmp_path)
    code, err = run("checkpoints", directory)
    assert code == 0 and "step of these checkpoints is unknown" in err
    (series,) = imported_series(directory)["."].values()
    assert series.axis == records.ORDER and series.steps.tolist() == [1, 2, 3]


def test_a_damaged_checkpoint_costs_only_that_checkpoint(trained, tmp_path) -> None:
    directory = fresh(trained, "hf_sharded", tmp_path)
    shard = sorted((directory / "checkpoint-20").glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    lightning = fresh(trained, "lightning", tmp_path)
    ckpt = sorted((lightning / "lightning_logs/version_0/checkpoints").glob("*.ckpt"))[1]
    ckpt.write_bytes(ckpt.read_bytes()[:1000])

    code, err = run("checkpoints", directory)
    assert code == 0 and "checkpoint-20: unreadable, skipped" in err and "truncated" in err, err
    assert {s.steps.tolist()[0] for s in imported_series(directory)[_only(directory)].values()} == {10}
    assert all(s.steps.tolist() == [10, 30] for s in imported_series(directory)[_only(directory)].values())
    code, err = run("checkpoints", lightning)
    assert code == 0 and f"{ckpt.name}: unreadable, skipped" in err, err


def _only(directory: Path) -> str:
    (run_dir,) = directory.glob("runs/*")
    return os.path.relpath(run_dir, directory)


def test_pickled_code_in_a_checkpoint_is_never_run(tmp_path) -> None:
    import torch

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    for step in (1, 2):
        state = {"layer.weight": torch.full((3, 3), float(step))}
        torch.save({"state_dict": state, "global_step": step, "hyper_parameters": {"x": Payload()}}, tmp_path / f"s{step}.ckpt")
    code, err = run("checkpoints", tmp_path)
    assert not marker.exists()
    assert code == 2 and "s1.ckpt: unreadable, skipped" in err and "posix.mkdir" in err and "never run" in err


def test_zero_tensors_report_their_change_and_frozen_ones_are_frozen(tmp_path) -> None:
    from safetensors.numpy import save_file

    for step, bias in ((0, 0.0), (10, 0.5), (20, 1.0)):
        save_file({"lora_b": np.full(4, bias, np.float32), "stuck": np.zeros(4, np.float32),
                   "w": np.full((2, 2), 1 + step / 10, np.float32)}, str(tmp_path / f"model_{step}.safetensors"))
    assert run("checkpoints", tmp_path)[0] == 0
    series = imported_series(tmp_path)["."]
    assert np.isnan(series["lora_b"].update_ratio[1])  # ||W_0|| = 0: no ratio, never a division by it
    np.testing.assert_allclose(series["lora_b"].change[1:], [0.1, 0.1])
    np.testing.assert_allclose(series["lora_b"].update_ratio[2], 1.0 / 10)
    result = engine.analyse_logdir(str(tmp_path)).ranking
    assert {r.tag: r.status for r in result.rows}["stuck"] == Status.FROZEN


def test_the_checkpoint_command_starts_without_the_ranking_pipeline(tmp_path) -> None:
    """An import pays for reading and writing, not for TensorBoard's summary APIs or the ranking engine."""
    from safetensors.numpy import save_file

    for step in (0, 10):
        save_file({"w": np.full((2, 2), 1 + step, np.float32)}, str(tmp_path / f"model_{step}.safetensors"))
    script = (
        "import sys; from tb_stagnation.cli import main; code = main(['checkpoints', sys.argv[1], '--quiet']); "
        "print(code, sorted(m for m in sys.modules if m.startswith(('tb_stagnation.api', 'tb_stagnation.engine', "
        "'tb_stagnation.verdict.ranking', 'tensorboard.summary', 'tensorboard.data'))))"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.split(None, 1) == ["0", "[]\n"]
    assert imported_series(tmp_path)["."]["w"].change[1] == pytest.approx(2.0)  # ||dW|| = 20 over 10 steps: written


def test_bf16_and_fp16_are_upcast_exactly(tmp_path) -> None:
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    base = torch.randn(64, 64, generator=gen)
    states = [{"bf": (base + 0.01 * i * torch.randn(64, 64, generator=gen)).bfloat16(),
               "half": (base * (1 + 0.01 * i)).half()} for i in range(3)]
    for i, state in enumerate(states):
        save_file(state, str(tmp_path / f"model_{i}.safetensors"))
    assert run("checkpoints", tmp_path)[0] == 0
    series = imported_series(tmp_path)["."]
    for key in ("bf", "half"):
        rms, ratio, cosine = expected_quantities([s[key].float().numpy() for s in states], [0, 1, 2])
        np.testing.assert_allclose(series[key].update_ratio[1:], ratio, rtol=1e-6)
        np.testing.assert_allclose(series[key].cosine[2:], cosine, rtol=1e-5)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_torch_files_read_views_and_narrow_floats_as_torch_holds_them(tmp_path, zipped) -> None:
    """Each torch file's pickle is read once and its tensors by offset: views of a shared storage
    (a transpose, a row), bf16 and fp16 come out as torch's own values; the legacy format alike."""
    import torch

    gen = torch.Generator().manual_seed(1)
    base = torch.randn(32, 48, generator=gen)
    states = []
    for i in range(3):
        w = base * (1 + 0.01 * i) + 0.001 * i * torch.randn(32, 48, generator=gen)
        states.append({"w": w, "w_t": w.t(), "row": w[3], "bf": w.bfloat16(), "half": w.half()})
        torch.save(states[-1], tmp_path / f"model_{i * 10}.pt", _use_new_zipfile_serialization=zipped)
    assert run("checkpoints", tmp_path)[0] == 0
    series = imported_series(tmp_path)["."]
    for key in states[0]:
        rms, ratio, cosine = expected_quantities([s[key].float().numpy() for s in states], [0, 10, 20])
        np.testing.assert_allclose(series[key].rms, rms, rtol=1e-6, err_msg=key)
        np.testing.assert_allclose(series[key].update_ratio[1:], ratio, rtol=1e-6, err_msg=key)
        np.testing.assert_allclose(series[key].cosine[2:], cosine, rtol=1e-5, err_msg=key)
    # Norms cannot tell a transpose from its storage's order: the values themselves, as torch holds them.
    reader = formats.open_checkpoint(str(tmp_path / "model_20.pt"), formats.TORCH)
    for info, values in reader.read(reader.tensors()):
        np.testing.assert_array_equal(values, states[2][info.key].float().numpy(), err_msg=info.key)


def test_parameters_in_some_checkpoints_or_reshaped_are_compared_where_comparable(tmp_path) -> None:
    from safetensors.numpy import save_file

    save_file({"a": np.ones(4, np.float32), "grows": np.ones(2, np.float32)}, str(tmp_path / "m_1.safetensors"))
    save_file({"a": np.full(4, 2, np.float32), "grows": np.ones(3, np.float32), "new": np.ones(2, np.float32)},
              str(tmp_path / "m_2.safetensors"))
    save_file({"a": np.full(4, 3, np.float32), "grows": np.full(3, 2, np.float32), "new": np.full(2, 2, np.float32)},
              str(tmp_path / "m_3.safetensors"))
    code, err = run("checkpoints", tmp_path)
    assert code == 0
    assert "new: missing from 1 of 3 checkpoints" in err and "grows: shape changed at step(s) 2" in err
    series = imported_series(tmp_path)["."]
    np.testing.assert_allclose(series["grows"].update_ratio, [np.nan, np.nan, 1.0])
    np.testing.assert_allclose(series["new"].update_ratio, [np.nan, 1.0])


def test_what_cannot_be_imported_exits_2_saying_what_to_do(trained, tmp_path) -> None:
    code, err = run("checkpoints", tmp_path)
    assert code == 2 and "no checkpoints found" in err and "Lightning .ckpt" in err and "Keras .weights.h5" in err

    lightning = fresh(trained, "lightning", tmp_path)
    for extra in sorted((lightning / "lightning_logs/version_0/checkpoints").glob("*.ckpt"))[1:]:
        extra.unlink()
    code, err = run("checkpoints", lightning)
    assert code == 2 and "only one checkpoint" in err and "save_top_k=-1" in err

    hf = fresh(trained, "hf", tmp_path)
    (run_dir,) = hf.glob("runs/*")
    shutil.copytree(run_dir, hf / "runs" / "second_run")
    code, err = run("checkpoints", hf)
    assert code == 2 and "--logdir" in err and "second_run" in err and run_dir.name in err
    code, err = run("checkpoints", hf, "--logdir", hf / "runs" / "second_run")
    assert code == 0 and len(imported.files(str(hf / "runs" / "second_run"))) == 1


def test_a_missing_reader_is_named_with_its_extra(trained, tmp_path) -> None:
    directory = fresh(trained, "keras", tmp_path)
    script = "import sys; sys.modules['h5py'] = None; from tb_stagnation.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", script, "checkpoints", str(directory)], env=QUIET_ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "pip install 'tb-stagnation[h5py]'" in proc.stderr, proc.stderr


def test_the_ranking_mentions_checkpoints_not_imported_yet(trained, tmp_path) -> None:
    directory = fresh(trained, "torch", tmp_path)
    code, err = run(directory)
    assert code == 0 and "4 checkpoint(s) in" in err and "0 imported" in err and "tb-stagnation checkpoints" in err
    assert run("checkpoints", directory)[0] == 0
    assert "tb-stagnation checkpoints" not in run(directory)[1]


@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "rust-loader"])
def test_tensorboard_ranks_a_run_that_holds_only_imported_movement(trained, tmp_path, start_tensorboard, load_fast) -> None:
    directory = fresh(trained, "hf", tmp_path)  # the Trainer logs scalars only: no histograms
    assert run("checkpoints", directory)[0] == 0
    tb = start_tensorboard(directory, load_fast=load_fast)  # ready = the plugin is listed as enabled
    status, body, _ = tb.plugin("ranking")
    assert status == 200
    rows = {r["tag"]: r for r in body["rows"]}
    assert rows["net.frozen.weight"]["status"] == "frozen" and rows["net.slow.weight"]["status"] == "stagnant"
    assert rows["net.dense.weight"]["source"] == "checkpoint" and rows["net.dense.weight"]["status"] == "moving"
    run_name = rows["net.dense.weight"]["run"]
    status, series, _ = tb.plugin(f"series?run={run_name}&tag=net.dense.weight")
    assert status == 200 and series["exact"] is None
    checkpoint = series["checkpoint"]
    assert checkpoint["steps"] == [10, 20, 30] and checkpoint["axis"] == "step"
    assert checkpoint["update_ratio"][0] is None and checkpoint["update_ratio"][1] > 0
    assert checkpoint["cosine"][:2] == [None, None] and -1 <= checkpoint["cosine"][2] <= 1


@pytest.mark.parametrize("name", ["torch", "keras"])  # units along rows, and along a kernel's columns
def test_window_by_window_each_pair_is_summed_once_to_the_figures_of_whole_windows(trained, name) -> None:
    """The import measures each new checkpoint in a window with the two before it. Given the sums the
    window before left (movement.Carried), a window measures only its newest checkpoint, to the same
    figures, bit for bit, as measuring the window whole."""
    from tb_stagnation.checkpoints import discover, movement, windows

    (series,) = discover.discover(str(trained[name]))
    placed = discover.place(series).placed
    assert len(placed) >= 3
    carried = movement.Carried()
    for i, (p, window) in enumerate(zip(placed, windows.windows(placed, placed))):
        whole = movement.measure(window, units_from=p.step)
        measured = movement.measure(window, units_from=p.step, carried=carried)
        if i > 0:  # the earlier checkpoints of the window are not measured again
            assert {step for points in measured.points.values() for step, _ in points} == {p.step}
        newest = {param: [(step, q) for step, q in points if step == p.step] for param, points in whole.points.items()}
        assert {param: points for param, points in measured.points.items() if points} == newest
        assert measured.units.keys() == whole.units.keys() and (i == 0 or measured.units)
        for param, moved in whole.units.items():
            np.testing.assert_array_equal(measured.units[param], moved, err_msg=param)
            assert measured.unit_quantiles[param][-1][0] == p.step
            np.testing.assert_array_equal(measured.unit_quantiles[param][-1][1], whole.unit_quantiles[param][-1][1])


@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
def test_memory_stays_below_one_checkpoint_whatever_the_model_size(tmp_path, fmt) -> None:
    """Three 300 MB checkpoints: beyond what importing the format's library takes (torch alone is
    ~220 MB), the import holds a few tensors of the window's checkpoints, never half a checkpoint."""
    rng = np.random.default_rng(0)
    base = {f"layer{i}.weight": rng.standard_normal((1600, 2000), dtype=np.float32) for i in range(24)}
    for step in (0, 100, 200):
        state = {k: v + np.float32(step / 1e5) for k, v in base.items()}
        if fmt == "torch":
            import torch

            torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / f"model_{step}.pt")
        else:
            from safetensors.numpy import save_file

            save_file(state, str(tmp_path / f"model_{step}.safetensors"))
        del state
    one_checkpoint = max(f.stat().st_size for f in tmp_path.glob("model_*"))
    del base
    # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the process it was forked from.
    library = "torch" if fmt == "torch" else "safetensors.numpy"
    script = (
        f"import re, sys, {library}; from tb_stagnation.cli import main; "
        "rss = lambda key: int(re.search(key + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024; "
        "print(rss('VmRSS')); code = main(sys.argv[1:]); print(rss('VmHWM')); sys.exit(code)"
    )
    proc = subprocess.run([sys.executable, "-c", script, "checkpoints", str(tmp_path), "--quiet"],
                          env=QUIET_ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    started, peak = map(int, proc.stdout.split()[-2:])
    assert peak - started < one_checkpoint / 2, (
        f"peak RSS {peak / 1e6:.0f} MB, {started / 1e6:.0f} MB of it before the import, one checkpoint {one_checkpoint / 1e6:.0f} MB")
    (series,) = [s for s in imported_series(tmp_path)["."].values()][:1]
    assert series.steps.tolist() == [0, 100, 200]
