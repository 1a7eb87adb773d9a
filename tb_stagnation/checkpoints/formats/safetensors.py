"""safetensors: one ``.safetensors`` file, or a Hugging Face folder of one or several shards."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator

import numpy as np

from tb_stagnation import storage
from tb_stagnation.checkpoints.formats import TensorInfo, UnreadableCheckpoint, normalise
from tb_stagnation.checkpoints.formats.listing import Listed, floating, reading


class SafetensorsReader(Listed):
    """``model.safetensors``, or shards listed by ``model.safetensors.index.json``.

    ``path`` is one ``.safetensors`` file, or an HF checkpoint folder (its
    index routes each key to the shard that holds it), a local path or a
    URL (:mod:`tb_stagnation.storage`). Each tensor is one ranged read of exactly its
    bytes, located by the header, so a checkpoint in a bucket costs its
    header and its tensors, nothing more. numpy has no bfloat16: those
    tensors are read as their raw 16 bits and widened to float32 exactly
    (bf16 is the upper half of a float32).
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)  # the step: the HF folder's trainer_state.json says it (see discover)
        self._files = _safetensors_files(path)
        self._location: dict[str, tuple[str, int]] = {}  # key -> (file, data offset)

    def _list(self) -> list[TensorInfo]:
        listing = []
        for file, keys in self._files.items():
            header, data_start = _safetensors_header(file)
            for key in keys if keys is not None else [k for k in header if k != "__metadata__"]:
                entry = header.get(key)
                if entry is None:
                    raise UnreadableCheckpoint(f"{file}: the index names {key!r}, the shard lacks it")
                dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
                start, end = entry["data_offsets"]
                self._location[key] = (file, data_start + start)
                if dtype is not None and floating(dtype):
                    listing.append(TensorInfo(normalise(key), key, tuple(entry["shape"]), dtype, end - start))
        return listing

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        self.tensors()
        for info in tensors:
            file, offset = self._location[info.key]
            with reading(file):
                raw = storage.read_range(file, offset, info.nbytes)
            if info.dtype == "bfloat16":  # the 16 bits become a float32's upper half
                bits = np.frombuffer(raw, dtype="<u2")
                yield info, (bits.astype(np.uint32) << 16).view(np.float32).reshape(info.shape)
            else:
                yield info, np.frombuffer(raw, dtype=np.dtype(info.dtype).newbyteorder("<")).reshape(info.shape)


_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                       "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
                       "BOOL": "bool"}


def _safetensors_files(path: str) -> dict[str, list[str] | None]:
    """file -> the keys to take from it (``None``: all), for a file or an HF folder."""
    if not storage.isdir(path):
        return {path: None}
    index = posixpath.join(path, "model.safetensors.index.json")
    if not storage.exists(index):
        return {posixpath.join(path, "model.safetensors"): None}
    try:
        weight_map = json.loads(storage.read_bytes(index))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UnreadableCheckpoint(f"{index}: not a safetensors index ({e})") from None
    files: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        files.setdefault(posixpath.join(path, shard), []).append(key)
    return files


def _safetensors_header(file: str) -> tuple[dict, int]:
    """The JSON header of a safetensors file and where its data starts.

    The header says where each tensor's bytes are (read in ranges, see
    :class:`SafetensorsReader`); it also catches truncation early.
    """
    try:
        size = storage.size(file)
        length = int.from_bytes(storage.read_range(file, 0, 8), "little")
        if length <= 0 or 8 + length > size:
            raise UnreadableCheckpoint(f"{file}: not a safetensors file (header length {length})")
        header = json.loads(bytes(storage.read_range(file, 8, length)))
    except (OSError, EOFError) as e:
        raise UnreadableCheckpoint(f"{file}: {getattr(e, 'strerror', None) or e}") from None
    except ValueError:
        raise UnreadableCheckpoint(f"{file}: the safetensors header is not JSON") from None
    ends = [e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"]
    if 8 + length + max(ends, default=0) > size:
        raise UnreadableCheckpoint(f"{file}: truncated ({size} bytes, the header describes more)")
    return header, 8 + length

