"""The CLI's direct reader against TensorBoard's own loader and checksum code."""

from __future__ import annotations

import numpy as np
import pytest
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as reference_crc32c

from conftest import WRITER_NAMES, tfrecords
from tb_stagnation import cli, crc32c, eventfile, ranking


def test_crc32c_matches_tensorboards_reference() -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 300, 400)]
    chunks += [b"", b"a", b"abcd", b"123456789"]
    buf = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    lengths = np.array([len(c) for c in chunks])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    got = crc32c.crc32c(buf, offsets, lengths)
    assert got.tolist() == [reference_crc32c(c) for c in chunks]
    assert crc32c.crc32c(np.frombuffer(b"123456789", np.uint8), np.array([0]), np.array([9]))[0] == 0xE3069283


@pytest.mark.parametrize("writer", WRITER_NAMES)
def test_parity_with_tensorboards_data_provider(writer_logs, writer: str) -> None:
    logdir = str(writer_logs[writer])
    data = eventfile.read_logdir(logdir)
    assert data.skipped == []
    direct = {(r.run, r.tag): r for r in ranking.rank(data.summaries(), data.exact()).rows}
    provided = {(r.run, r.tag): r for r in cli.load_through_tensorboard(logdir, ranking.DEFAULT_RATIO).rows}
    assert direct.keys() == provided.keys()
    for key, row in provided.items():
        other = direct[key]
        assert (other.status, other.samples, other.first_step, other.last_step) == (
            row.status, row.samples, row.first_step, row.last_step), key
        # TF1 histograms reach the Python loader as float32, the direct reader keeps float64.
        assert other.score == pytest.approx(row.score, rel=1e-5, abs=1e-12), key
        assert other.net == pytest.approx(row.net, rel=1e-5, abs=1e-12), key


@pytest.mark.parametrize(
    "damage, kept, reason",
    [
        ("none", 5, None),
        ("payload", 4, "1 record(s) failed the payload CRC check"),
        ("length", 2, "record header at byte"),
        ("truncated", 4, "incomplete record (still being written?)"),
        ("garbage", 0, "not an event file"),
    ],
)
def test_records_report_what_they_skip(tmp_path, damage: str, kept: int, reason: str | None) -> None:
    payloads = [bytes([i]) * (40 + i) for i in range(5)]
    raw = bytearray(tfrecords(payloads))
    third = sum(12 + len(p) + 4 for p in payloads[:2])
    if damage == "payload":
        raw[third + 12 + 3] ^= 0xFF
    elif damage == "length":
        raw[third] ^= 0x01  # still within the file: only the header CRC can tell
    elif damage == "truncated":
        raw = raw[:-7]
    elif damage == "garbage":
        raw = bytearray(np.random.default_rng(3).bytes(300))
    path = tmp_path / "events.out.tfevents.1.x"
    path.write_bytes(bytes(raw))
    got, skipped = eventfile.records(str(path))
    assert len(got) == kept
    assert all(g in payloads for g in got)
    if reason is None:
        assert skipped == []
    else:
        assert len(skipped) == 1 and reason in skipped[0].reason
