"""Event files as found in the wild, through the CLI and through a real TensorBoard.

What TensorBoard's Python loader does (tensorboard 2.21 with TensorFlow's
record reader; ``event_file_loader.RawEventFileLoader.Load``): at the first
record it cannot read it catches ``DataLossError``, logs
``Truncated record in <file> (<reason>)`` at DEBUG level only and stops
reading that file for this reload, keeping everything before. The next reload
retries from the same offset. So, per case (one run directory each):

| case | loader | CLI | TensorBoard |
| --- | --- | --- | --- |
| ``trunc``: last record cut short (writer still writing) | "truncated record at N"; all complete records kept | ranks the complete records, stderr "last N bytes hold an incomplete record" | serves the complete records; once the record is completed on disk, the next reload picks it up |
| ``crc``: bytes flipped mid-file | "corrupted record at N"; the rest of the file is never read (every reload stops there again) | skips only the damaged record (its payload CRC fails, the framing holds), stderr "1 record(s) failed the payload CRC check" | serves the prefix, keeps serving |
| ``zero``: zero-length event file | nothing read, nothing logged (a just-created file looks the same) | run absent, no message | run absent |
| ``garbage``: random bytes named like an event file | "corrupted record at 0 (Is this even a TFRecord file?)" | stderr "not an event file"; alone: exit 2 | run absent |
| ``restart``: a second file whose steps go back to 0 | both files read, repeated steps kept twice (file_version 2 only purges on SessionLog.START) | the engine keeps the newest write of each step | same |
| ``dup``: the same step written twice in one file | both kept | newest write of each step | same |
| ``layout``: 30 buckets at odd steps, 7 at even | read as is | ranked (W1 compares any two layouts) | same |

The CLI exits 0 when anything was readable and 2 when nothing was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import QUIET_ENV, tfrecords

TAGS = ("a/kernel", "b/kernel")
STEPS = tuple(range(0, 50, 5))
CUT = 20  # bytes cut off the end of the truncated file


def _events(steps, tags=TAGS, scale=1.0, buckets=lambda step: 30, seed=0) -> list[bytes]:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.histogram import summary_v2

    rng = np.random.default_rng(seed)
    out = [event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString()]
    for i, step in enumerate(steps):
        for tag in tags:
            data = rng.normal(0.01 * scale * step, 1.0, 300)
            ev = event_pb2.Event(step=step, wall_time=1.7e9 + seed * 1000 + i,
                                 summary=summary_v2.histogram_pb(tag, data, buckets=buckets(step)))
            out.append(ev.SerializeToString())
    return out


def _event_file(root: Path, run: str, index: int = 0) -> Path:
    path = root / run / f"events.out.tfevents.{1700000000 + index}.wild.{index}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def wild(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wild") / "logs"
    full = tfrecords(_events(STEPS))
    _event_file(root, "good").write_bytes(full)
    _event_file(root, "trunc").write_bytes(full[:-CUT])
    corrupted = bytearray(full)
    mid = len(corrupted) // 2
    corrupted[mid : mid + 4] = bytes(b ^ 0xFF for b in corrupted[mid : mid + 4])
    _event_file(root, "crc").write_bytes(bytes(corrupted))
    _event_file(root, "zero").write_bytes(b"")
    _event_file(root, "garbage").write_bytes(np.random.default_rng(1).bytes(5000))
    _event_file(root, "restart", 0).write_bytes(full)
    _event_file(root, "restart", 1).write_bytes(tfrecords(_events(range(0, 30, 5), scale=3, seed=1)))
    _event_file(root, "dup").write_bytes(tfrecords(_events([0, 5, 5, 10, 10, 15])))
    layout = _events(range(20), tags=("a/kernel",), buckets=lambda s: 30 if s % 2 else 7)
    _event_file(root, "layout").write_bytes(tfrecords(layout))
    return {"root": root, "full": full}


def _cli(logdir: Path) -> tuple[int, list[dict] | None, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tb_stagnation.cli", str(logdir), "--json"],
        capture_output=True, text=True, env=QUIET_ENV, timeout=300,
    )
    stderr = "\n".join(l for l in proc.stderr.splitlines() if l.startswith("tb-stagnation:"))
    rows = json.loads(proc.stdout)["rows"] if proc.returncode == 0 else None
    return proc.returncode, rows, stderr


def _by_run(rows: list[dict]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for r in rows:
        out.setdefault(r["run"], {})[r["tag"]] = r
    return out


def _check_readable(runs: dict[str, dict[str, dict]]) -> None:
    """What every loader should make of the readable cases."""
    assert set(runs) == {"good", "trunc", "crc", "restart", "dup", "layout"}
    assert {t: r["samples"] for t, r in runs["good"].items()} == {"a/kernel": 10, "b/kernel": 10}
    # The cut record is b/kernel at step 45: everything before it is there.
    assert {t: r["samples"] for t, r in runs["trunc"].items()} == {"a/kernel": 10, "b/kernel": 9}
    assert runs["trunc"]["b/kernel"]["last_step"] == 40
    # TensorBoard keeps the prefix before the corrupted record, the CLI every intact
    # record: some samples are lost either way, never all.
    assert all(r["samples"] >= 1 for r in runs["crc"].values()), runs["crc"]
    assert sum(r["samples"] for r in runs["crc"].values()) < 20, runs["crc"]
    assert all(r["samples"] == 10 and r["last_step"] == 45 for r in runs["restart"].values())
    assert all(r["samples"] == 4 and r["last_step"] == 15 for r in runs["dup"].values())
    assert runs["layout"]["a/kernel"]["samples"] == 20
    for tags in runs.values():
        for r in tags.values():
            assert r["status"] in ("moving", "stagnant", "unresolved"), r
            assert r["score"] is not None and r["score"] > 0, r


def test_cli_ranks_what_is_readable_and_says_what_it_skipped(wild) -> None:
    root = wild["root"]
    code, rows, stderr = _cli(root)
    assert code == 0, stderr
    _check_readable(_by_run(rows))
    lines = stderr.splitlines()

    def said(run: str, text: str) -> bool:
        return any(f"{os.sep}{run}{os.sep}events.out.tfevents" in l and text in l for l in lines)

    assert said("trunc", "incomplete record (still being written?)"), stderr
    assert said("crc", "1 record(s) failed the payload CRC check"), stderr
    assert said("garbage", "not an event file"), stderr
    assert len(lines) == 3, stderr  # nothing about the readable files, nor the empty one
    assert "Traceback" not in stderr


@pytest.mark.parametrize("case", ["garbage", "zero"])
def test_cli_exits_non_zero_when_nothing_is_readable(wild, case) -> None:
    code, _, stderr = _cli(wild["root"] / case)
    assert code == 2
    assert "no histograms or exact movement found" in stderr
    if case == "garbage":
        assert "not an event file" in stderr


def test_tensorboard_serves_what_is_readable_and_keeps_serving(wild, start_tensorboard) -> None:
    root = wild["root"]
    tb = start_tensorboard(root)
    status, body, ctype = tb.plugin("ranking")
    assert status == 200 and ctype.startswith("application/json")
    runs = _by_run(body["rows"])
    _check_readable(runs)
    for run, tags in runs.items():
        for tag in tags:
            status, series, _ = tb.plugin("series?" + urllib.parse.urlencode({"run": run, "tag": tag}))
            assert status == 200, (run, tag, series)
            assert len(series["steps"]) == tags[tag]["samples"]
    for run in ("zero", "garbage"):
        status, err, _ = tb.plugin("ranking?run=" + run)
        assert status == 404 and "error" in err

    # The writer finishes the cut record: the next reload (1 s) reads it.
    with open(next((root / "trunc").iterdir()), "ab") as f:
        f.write(wild["full"][-CUT:])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body, _ = tb.plugin("ranking?run=trunc")
        assert status == 200
        samples = {r["tag"]: r["samples"] for r in body["rows"]}
        if samples == {"a/kernel": 10, "b/kernel": 10}:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"completed record never served: {samples}")
    # The corrupted file stays stuck at its prefix, and the server keeps answering.
    status, body, _ = tb.plugin("ranking?run=crc")
    assert status == 200 and all(1 <= r["samples"] < 10 for r in body["rows"])
    assert tb.proc.poll() is None
