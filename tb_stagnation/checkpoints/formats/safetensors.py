"""safetensors: one ``.safetensors`` file, or a Hugging Face folder of one or several shards."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator

import numpy as np

from tb_stagnation.checkpoints.formats import TensorInfo, UnreadableCheckpoint, normalise
from tb_stagnation.checkpoints.formats.listing import Listed, floating, owned, reading


class SafetensorsReader(Listed):
    """``model.safetensors``, or shards listed by ``model.safetensors.index.json``.

    ``path`` is one ``.safetensors`` file, or an HF checkpoint folder (its
    index routes each key to the shard that holds it). numpy has no
    bfloat16: those tensors are read as their raw 16 bits and widened to
    float32 exactly (bf16 is the upper half of a float32).
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
        from safetensors import safe_open

        self.tensors()
        by_file: dict[str, list[TensorInfo]] = {}
        for info in tensors:
            by_file.setdefault(self._location[info.key][0], []).append(info)
        for file, infos in by_file.items():
            with reading(file), safe_open(file, framework="np") as f:
                for info in infos:
                    if info.dtype == "bfloat16":
                        yield info, _bfloat16(file, self._location[info.key][1], info.shape)
                    else:
                        yield info, owned(f.get_tensor(info.key))


_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                       "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
                       "BOOL": "bool"}


def _safetensors_files(path: str) -> dict[str, list[str] | None]:
    """file -> the keys to take from it (``None``: all), for a file or an HF folder."""
    if not os.path.isdir(path):
        return {path: None}
    index = os.path.join(path, "model.safetensors.index.json")
    if not os.path.exists(index):
        return {os.path.join(path, "model.safetensors"): None}
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UnreadableCheckpoint(f"{index}: not a safetensors index ({e})") from None
    files: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        files.setdefault(os.path.join(path, shard), []).append(key)
    return files


def _safetensors_header(file: str) -> tuple[dict, int]:
    """The JSON header of a safetensors file and where its data starts.

    Read here rather than through ``safe_open`` because only the header says
    where a bfloat16 tensor's bytes are; it also catches truncation early.
    """
    try:
        size = os.path.getsize(file)
        with open(file, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if length <= 0 or 8 + length > size:
                raise UnreadableCheckpoint(f"{file}: not a safetensors file (header length {length})")
            header = json.loads(f.read(length))
    except OSError as e:
        raise UnreadableCheckpoint(f"{file}: {e.strerror or e}") from None
    except ValueError:
        raise UnreadableCheckpoint(f"{file}: the safetensors header is not JSON") from None
    ends = [e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"]
    if 8 + length + max(ends, default=0) > size:
        raise UnreadableCheckpoint(f"{file}: truncated ({size} bytes, the header describes more)")
    return header, 8 + length


def _bfloat16(file: str, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    """bfloat16 values widened to float32: the 16 bits become a float32's upper half."""
    count = int(np.prod(shape))
    bits = np.fromfile(file, dtype="<u2", count=count, offset=offset)
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(shape)
