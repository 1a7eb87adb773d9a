"""The CLI's direct reader against TensorBoard's own loader and checksum code."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import WRITER_NAMES, tfrecords
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as reference_crc32c
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference_masked_crc32c
from tensorboard.util import tensor_util

from tb_stagnation import engine
from tb_stagnation.measure import histogram
from tb_stagnation.sources import crc32c, eventfile, tf1_histograms, tf2_layout, tfrecord

# Both ways of checking record CRCs: the default (google-crc32c when installed) and the numpy fallback.
BACKENDS = [
    pytest.param(crc32c.numpy_crc32c, id="numpy"),
    pytest.param(
        crc32c.compiled_crc32c, id="google-crc32c",
        marks=pytest.mark.skipif(crc32c.google_crc32c is None, reason="google-crc32c not installed"),
    ),
]


@pytest.fixture(params=BACKENDS)
def crc_backend(request, monkeypatch):
    """Each way of checking record CRCs, made the one the reader uses."""
    monkeypatch.setattr(crc32c, "DEFAULT_CRC32C", request.param)
    return request.param


def _concatenated(chunks: list[bytes]) -> tuple[bytes, np.ndarray, np.ndarray]:
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    return b"".join(chunks), np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64), lengths


def test_crc32c_of_random_payloads_matches_the_tf_stub_reference(crc_backend) -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 300, 400)]
    chunks += [b"", b"a", b"abcd", b"123456789"]
    raw, offsets, lengths = _concatenated(chunks)
    assert crc_backend(raw, offsets, lengths).tolist() == [reference_crc32c(c) for c in chunks]
    assert crc32c.masked_crc32c(raw, offsets, lengths).tolist() == [reference_masked_crc32c(c) for c in chunks]
    assert crc_backend(b"123456789", np.array([0]), np.array([9]))[0] == 0xE3069283


def test_crc32c_of_many_eight_byte_records_matches_the_tf_stub_reference() -> None:
    """A file's length headers are checked all at once (8 bytes each): anywhere in the bytes, overlapping too."""
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    starts = np.concatenate([[0, len(raw) - 8], rng.integers(0, len(raw) - 8, 3000)])
    got = crc32c.masked_crc32c(raw, starts, np.full(len(starts), 8)).tolist()
    assert got == [reference_masked_crc32c(raw[a : a + 8]) for a in starts.tolist()]


def test_the_compiled_crc32c_is_the_default_when_installed() -> None:
    """It checks a file's CRCs 1.4-9x faster than numpy (see tb_stagnation/sources/crc32c.py); its Python build, slower."""
    google_crc32c = pytest.importorskip("google_crc32c")
    if google_crc32c.implementation != "c":
        pytest.skip("google-crc32c without its compiled code")
    assert crc32c.DEFAULT_CRC32C is crc32c.compiled_crc32c


@pytest.mark.parametrize("writer", WRITER_NAMES)
def test_crc32c_of_every_writers_files_matches_the_tf_stub_reference(writer_logs, writer: str, crc_backend) -> None:
    """Every header and payload of every writer's files, as TensorBoard masks them and as stored."""
    paths = sorted(p for p in writer_logs[writer].rglob("*") if "tfevents" in p.name)
    assert paths
    for path in paths:
        raw, offsets, ends, skipped = tfrecord.framed_records(str(path))
        assert skipped == [] and len(offsets)
        heads = offsets - 12
        for starts, lengths in ((offsets, ends - offsets), (heads, np.full(len(heads), 8))):
            got = crc32c.masked_crc32c(raw, starts, lengths).tolist()
            assert got == [reference_masked_crc32c(raw[a : a + n]) for a, n in zip(starts.tolist(), lengths.tolist())]
            stored = np.frombuffer(raw, np.uint8)[(starts + lengths)[:, None] + np.arange(4)].view("<u4")[:, 0]
            assert got == stored.tolist()


@pytest.mark.parametrize("writer", WRITER_NAMES)
def test_parity_with_tensorboards_data_provider(writer_logs, writer: str) -> None:
    logdir = str(writer_logs[writer])
    outcome = engine.analyse_logdir(logdir)
    assert outcome.skipped == []
    direct = {(r.run, r.tag): r for r in outcome.ranking.rows}
    provided = {(r.run, r.tag): r for r in engine.analyse_through_tensorboard(logdir).ranking.rows}
    assert direct.keys() == provided.keys()
    for key, row in provided.items():
        other = direct[key]
        assert (other.status, other.samples, other.first_step, other.last_step) == (
            row.status, row.samples, row.first_step, row.last_step), key
        # TF1 histograms reach the Python loader as float32, the direct reader keeps float64.
        assert other.score == pytest.approx(row.score, rel=1e-5, abs=1e-12), key
        assert other.net == pytest.approx(row.net, rel=1e-5, abs=1e-12), key


def test_summarising_run_by_run_ranks_as_reading_everything_first(writer_logs) -> None:
    """The CLI drops each run's histograms once summarised; its ranking is the one of the whole log."""
    logdir = str(next(iter(writer_logs.values())).parent)  # every writer's log, one run each
    assert len(eventfile.read_logdir(logdir).histograms) >= len(writer_logs)
    expected = {(r.run, r.tag): r for r in engine.analyse_logdir(logdir).ranking.rows}
    got = {(r.run, r.tag): r for r in engine.analyse_logdir(logdir, held_bytes=0).ranking.rows}
    assert got.keys() == expected.keys()
    for key, row in expected.items():
        assert (got[key].status, got[key].samples, got[key].last_step) == (row.status, row.samples, row.last_step)
        assert got[key].score == pytest.approx(row.score, rel=1e-12, abs=1e-300), key


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
def test_records_report_what_they_skip(tmp_path, crc_backend, damage: str, kept: int, reason: str | None) -> None:
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
    got, skipped = tfrecord.records(str(path))
    assert len(got) == kept
    assert all(g in payloads for g in got)
    if reason is None:
        assert skipped == []
    else:
        assert len(skipped) == 1 and reason in skipped[0].reason


@pytest.mark.parametrize("pass_bytes, chunk_bytes", [(1 << 20, 1 << 26), (64, 256)])
def test_crc32c_of_ragged_records_anywhere_in_the_buffer(
    monkeypatch, crc_backend, pass_bytes: int, chunk_bytes: int
) -> None:
    """Records at the very start and end of the buffer, of every length mod 16, long and empty.

    Small pass and chunk sizes force the numpy CRC into one record per pass and many chunks.
    """
    monkeypatch.setattr(crc32c, "_PASS_BYTES", pass_bytes)
    monkeypatch.setattr(crc32c, "_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(2)
    lengths = [*range(40), 0, 0, 255, 256, 257, 1000, 4099, 70001, *rng.integers(0, 2000, 60).tolist()]
    rng.shuffle(lengths)
    chunks = [rng.bytes(n) for n in lengths]
    gaps = rng.integers(0, 5, len(chunks))
    raw = b"".join(rng.bytes(int(g)) + c for g, c in zip(gaps, chunks))
    ends = np.cumsum(gaps + np.array(lengths))
    offsets = ends - np.array(lengths)
    got = crc_backend(raw, offsets, np.array(lengths))
    assert got.tolist() == [reference_crc32c(c) for c in chunks]
    assert offsets[0] == gaps[0] and ends[-1] == len(raw)


def _histogram(rng, buckets: int, counts: str) -> summary_pb2.HistogramProto:
    limits = np.sort(rng.normal(size=buckets))
    if counts == "edges empty":
        c = rng.integers(0, 5, buckets).astype(float)
        c[: rng.integers(0, buckets + 1)] = 0
        c[buckets - rng.integers(0, buckets + 1) :] = 0
    elif counts == "odd":
        c = rng.choice([0.0, -1.0, np.nan, 2.5, np.inf], buckets)
    else:
        c = rng.integers(1, 5, buckets).astype(float)
    return summary_pb2.HistogramProto(
        min=float(rng.normal()) if buckets else 0.0, max=float(rng.normal()), num=float(np.nansum(c)),
        bucket_limit=limits.tolist(), bucket=c.tolist(),
    )


def assert_same_distribution(got, want) -> None:
    """Equal as drift reads them: both finite or neither, and if finite the same buckets with mass.

    The reader keeps only the buckets of a TF1 histogram that drift keeps.
    """
    got, want = (histogram.stack([np.asarray(x, dtype=np.float64)]) for x in (got, want))
    assert histogram.finite(got)[0] == histogram.finite(want)[0]
    if histogram.finite(want)[0]:
        a, b = histogram.clean(got), histogram.clean(want)
        for x, y in zip((a.left, a.right, a.count), (b.left, b.right, b.count)):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("counts", ["full", "edges empty", "odd"])
def test_tf1_histograms_convert_as_histogram_from_proto(counts: str) -> None:
    """A series converted at once reads as the per-proto reference does, NaN and Inf included."""
    rng = np.random.default_rng(4)
    for same_size in (True, False):
        protos = [_histogram(rng, 12 if same_size else int(rng.integers(0, 20)), counts) for _ in range(50)]
        protos.append(summary_pb2.HistogramProto(min=-0.0, max=0.0, bucket_limit=[1.0], bucket=[0.0]))
        parts = [tf1_histograms.packed_parts(h) for h in protos]
        assert all(p is not None for p in parts)
        stacked = tf1_histograms.convert(parts)
        for h, part, got in zip(protos, parts, stacked):
            want = tf1_histograms.histogram_from_proto(h)
            assert_same_distribution(got, want)
            assert_same_distribution(tf1_histograms.rows(part), want)


def test_tf1_nonfinite_limit_between_empty_buckets_still_flags_the_histogram() -> None:
    """Only counted buckets become rows, yet a NaN limit among the empty ones inside the span counts."""
    inside = summary_pb2.HistogramProto(min=0.0, max=0.4, bucket_limit=[0.1, np.nan, 0.3, 0.5], bucket=[5, 0, 0, 7])
    outside = summary_pb2.HistogramProto(min=0.0, max=0.4, bucket_limit=[0.1, 0.2, 0.3, np.nan], bucket=[5, 0, 7, 0])
    stacked = tf1_histograms.convert([tf1_histograms.packed_parts(h) for h in (inside, outside)])
    assert list(histogram.finite(stacked)) == [False, True]
    for h, got in zip((inside, outside), stacked):
        assert_same_distribution(got, tf1_histograms.histogram_from_proto(h))


def test_tf1_histograms_with_fewer_limits_than_buckets_take_the_reference_path() -> None:
    h = summary_pb2.HistogramProto(min=0.0, max=3.0, bucket_limit=[1.0, 2.0], bucket=[1.0, 0.0, 0.0, 2.0])
    assert tf1_histograms.packed_parts(h) is None
    with pytest.raises(ValueError):
        tf1_histograms.histogram_from_proto(h)  # counted as a value that could not be read
    h = summary_pb2.HistogramProto(min=0.0, max=3.0, bucket_limit=[1.0, 2.0], bucket=[1.0, 2.0, 0.0])
    assert tf1_histograms.packed_parts(h) is None
    np.testing.assert_array_equal(tf1_histograms.histogram_from_proto(h), [[0.0, 1.0, 1.0], [1.0, 3.0, 2.0]])


def _value(tag: str, plugin: str | None = None, **fields) -> summary_pb2.Summary.Value:
    value = summary_pb2.Summary.Value(tag=tag, **fields)
    if plugin:
        value.metadata.plugin_data.plugin_name = plugin
    return value


def _event(step: int, *values: summary_pb2.Summary.Value) -> bytes:
    event = event_pb2.Event(step=step, wall_time=1.7e9 + step, summary=summary_pb2.Summary(value=values))
    return event.SerializeToString()


def _mixed_log() -> list[bytes]:
    """Every kind of value the reader meets, and some it must skip or count as unreadable."""
    rng = np.random.default_rng(5)
    hist = lambda k: tensor_util.make_tensor_proto(rng.normal(size=(k, 3)))  # noqa: E731
    events = [event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString()]
    for step in range(6):
        first = step == 0
        events.append(_event(
            step,
            _value("tf2", "histograms" if first else None, tensor=hist(30)),
            _value("layout", "histograms" if first else None, tensor=hist(30 if step % 2 else 7)),
            _value("tf1", histo=_histogram(rng, 20, "edges empty")),
            _value("float32", "histograms" if first else None,
                   tensor=tensor_util.make_tensor_proto(rng.normal(size=(4, 3)).astype(np.float32))),
            _value("scalar", "scalars" if first else None, tensor=tensor_util.make_tensor_proto(1.0)),
            _value("simple", simple_value=2.0),
        ))
    # A [k, 3] tag whose metadata comes late: values before it are not known to be histograms.
    events.append(_event(6, _value("late", tensor=hist(5))))
    events.append(_event(7, _value("late", "histograms", tensor=hist(5))))
    events.append(_event(8, _value("late", tensor=hist(5))))
    bad = tensor_util.make_tensor_proto(rng.normal(size=7))  # not [k, 3]
    events.append(_event(9, _value("tf2", tensor=bad), _value("tf1", histo=summary_pb2.HistogramProto(
        bucket_limit=[1.0], bucket=[1.0, 0.0, 2.0]))))
    events.append(b"\xff\xff\xff")  # does not parse
    return events


def _reference(payloads: list[bytes]) -> tuple[dict, int]:
    """Per record and value, the plain way: tag -> (steps, wall times, [k, 3] arrays), and what failed."""
    series: dict[str, tuple[list, list, list]] = {}
    plugin_of: dict[str, str] = {}
    bad = 0
    for payload in payloads:
        try:
            event = event_pb2.Event.FromString(payload)
        except DecodeError:
            bad += 1
            continue
        for value in event.summary.value:
            if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                plugin_of.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
            if value.HasField("histo"):
                try:
                    rows = tf1_histograms.histogram_from_proto(value.histo)
                except ValueError:
                    bad += 1
                    continue
            elif value.HasField("tensor") and plugin_of.get(value.tag) == "histograms":
                try:
                    rows = tensor_util.make_ndarray(value.tensor).astype(np.float64).reshape(-1, 3)
                except ValueError:
                    bad += 1
                    continue
            else:
                continue
            s = series.setdefault(value.tag, ([], [], []))
            s[0].append(event.step)
            s[1].append(event.wall_time)
            s[2].append(rows)
    return series, bad


def test_read_logdir_reads_as_a_plain_per_record_reading(tmp_path) -> None:
    payloads = _mixed_log()
    path = tmp_path / "run" / "events.out.tfevents.1.x"
    path.parent.mkdir()
    path.write_bytes(tfrecords(payloads))
    data = eventfile.read_logdir(str(tmp_path))
    want, bad = _reference(payloads)
    assert [str(s) for s in data.skipped] == [f"{path}: {bad} record(s) or value(s) could not be read"]
    assert (data.files, data.records) == (1, len(payloads))
    got = data.histograms["run"]
    assert list(got) == list(want) == ["tf2", "layout", "tf1", "float32", "late"]
    for tag, (steps, walls, values) in want.items():
        assert list(got[tag].steps) == steps and list(got[tag].wall_times) == walls, tag
        assert len(got[tag].values) == len(values)
        for g, w in zip(got[tag].values, values):
            assert_same_distribution(g, w)
    assert isinstance(got["tf2"].values, np.ndarray) and got["tf2"].values.shape == (6, 30, 3)
    assert isinstance(got["layout"].values, list)


def test_a_record_that_fails_its_crc_is_reported_once(tmp_path) -> None:
    """A damaged record is a CRC failure only, even if it would not parse either."""
    payloads = [_event(0, _value("h", "histograms", tensor=tensor_util.make_tensor_proto(np.ones((2, 3))))),
                b"\xff\xff\xff\xff", _event(1, _value("h", tensor=tensor_util.make_tensor_proto(np.ones((2, 3)))))]
    raw = bytearray(tfrecords(payloads))
    raw[12 + len(payloads[0]) + 4 + 12 + 1] ^= 0x01  # inside the second payload
    path = tmp_path / "events.out.tfevents.1.x"
    path.write_bytes(bytes(raw))
    data = eventfile.read_logdir(str(tmp_path))
    assert [s.reason for s in data.skipped] == ["1 record(s) failed the payload CRC check"]
    assert data.records == 2 and list(data.histograms["."]["h"].steps) == [0, 1]


def _field(key: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    size, length = b"", len(payload)
    while True:
        size += bytes([(length & 0x7F) | (0x80 if length > 0x7F else 0)])
        length >>= 7
        if not length:
            return bytes([key]) + size + payload


def _layout_cases() -> list[bytes]:
    """TF2 histograms that the reader may tell by layout, and look-alikes it must parse."""
    rng = np.random.default_rng(6)
    hist = lambda k=4: tensor_util.make_tensor_proto(rng.normal(size=(k, 3)))  # noqa: E731
    steps = [0, 1, 127, 128, 16383, 16384, 2**40, 2**62, -1, -(2**40)]
    events = [_event(5, _value("a", "histograms", tensor=hist()), _value("b", "histograms", tensor=hist()))]
    events += [_event(s, _value("a", tensor=hist())) for s in steps]
    events += [_event(s, _value("b", tensor=hist())) for s in steps]
    # Same first bytes after the step as "a...", another tag.
    long = "a" * 40
    events += [_event(3, _value(long + "x", "histograms", tensor=hist()))]
    events += [_event(s, _value(long + c, tensor=hist())) for s in (4, 5) for c in "xy"]
    no_wall_time = event_pb2.Event(step=7, summary=summary_pb2.Summary(value=[_value("a", tensor=hist())]))
    events += [no_wall_time.SerializeToString()]
    # Step before wall time; a second step after the summary (the last one counts).
    late_wall = event_pb2.Event(step=8).SerializeToString() + event_pb2.Event(wall_time=2.0).SerializeToString()
    events += [late_wall + _field(0x2A, _field(0x0A, _value("a", tensor=hist()).SerializeToString()))]
    events += [_event(9, _value("a", tensor=hist())) + event_pb2.Event(step=10).SerializeToString()]
    # An unknown field after the tensor; two tensor_content fields (the last counts).
    for step in (10, 11):
        value = _value("a", tensor=hist()).SerializeToString() + b"\x78\x81\x01"
        events += [event_pb2.Event(wall_time=3.0, step=step).SerializeToString() + _field(0x2A, _field(0x0A, value))]
    twice = _field(0x42, hist().SerializeToString() + _field(0x22, rng.normal(size=12).tobytes()))
    value = _field(0x0A, b"a") + twice
    events += [
        event_pb2.Event(wall_time=4.0, step=s).SerializeToString() + _field(0x2A, _field(0x0A, value)) for s in (12, 13)
    ]
    # Float32 content, a shape that is not [k, 3], metadata on every value, two values in one event.
    events += [_event(14, _value("a", tensor=tensor_util.make_tensor_proto(np.ones((4, 3), np.float32))))]
    events += [_event(s, _value("c", "histograms", tensor=hist())) for s in (15, 16)]
    events += [_event(s, _value("a", tensor=hist()), _value("b", tensor=hist())) for s in (17, 18)]
    events += [_event(19, _value("a", tensor=tensor_util.make_tensor_proto(np.ones(5))))]
    # An unknown group in the value: the reader does not look into those.
    grouped = _value("a", tensor=hist()).SerializeToString() + b"\x7b\x08\x01\x7c"
    events += [event_pb2.Event(wall_time=5.0, step=s).SerializeToString() + _field(0x2A, _field(0x0A, grouped))
               for s in (20, 21)]
    return events


def test_histograms_told_by_layout_read_as_parsed(tmp_path) -> None:
    payloads = _layout_cases()
    (tmp_path / "events.out.tfevents.1.x").write_bytes(tfrecords(payloads))
    data = eventfile.read_logdir(str(tmp_path))
    want, bad = _reference(payloads)
    assert [s.reason for s in data.skipped] == [f"{bad} record(s) or value(s) could not be read"]
    got = data.histograms["."]
    assert list(got) == list(want)
    for tag, (steps, walls, values) in want.items():
        assert list(got[tag].steps) == steps and list(got[tag].wall_times) == walls, tag
        assert all(np.array_equal(g[: len(w)], w) for g, w in zip(got[tag].values, values)), tag
    # Told by layout: steps of 1 to 9 varint bytes, both tags sharing first bytes, a field after the
    # tensor, two tensor_content fields, metadata on every value.
    told = tf2_layout.known_by_layout(*_framed(tmp_path)).which
    expected = [*range(2, 9), *range(12, 19), *range(22, 26), *range(29, 33), 34, 35]
    assert np.flatnonzero(told >= 0).tolist() == expected


def _framed(directory) -> tuple[bytes, np.ndarray, np.ndarray]:
    raw, offsets, ends, _ = tfrecord.framed_records(str(directory / "events.out.tfevents.1.x"))
    return raw, offsets, ends


@pytest.mark.parametrize(
    "raw, records, reason",
    [
        (b"", 0, None),
        (b"abc", 0, "last 3 bytes hold an incomplete record"),
        (tfrecords([b""]), 1, None),
        (tfrecords([b"", b"\x08\x01"]) + b"\x00" * 11, 2, "last 11 bytes hold an incomplete record"),
    ],
)
def test_tiny_files(tmp_path, raw: bytes, records: int, reason: str | None) -> None:
    (tmp_path / "events.out.tfevents.1.x").write_bytes(raw)
    data = eventfile.read_logdir(str(tmp_path))
    assert (data.files, data.records, data.histograms) == (1, records, {})
    if reason is None:
        assert data.skipped == []
    else:
        assert len(data.skipped) == 1 and reason in data.skipped[0].reason
