"""Which checkpoints lie under a directory, in training order, and where their movement goes.

:func:`discover` walks a directory once and groups what it finds into
:class:`Series`, one per training run: the ``checkpoint-N`` folders of one
Hugging Face output directory, the ``.ckpt`` files of one Lightning
``version_N/checkpoints``, the bundles of one TF model directory, the files
one Keras ``ModelCheckpoint`` wrote. :func:`place` then puts a series'
checkpoints on the training axis from what each format records (see
:data:`AXIS_SOURCES`), reading no tensor.

The run directory a series belongs to is the nearest one, from the
checkpoints' directory up to the directory searched (or its parent, when
the search starts in a run's checkpoint folder), that holds the
training's own event files (HF ``runs/<time_host>``, Lightning
``version_N``, the TF model directory, Keras' ``logs/train``); where one
level holds several runs and none is the training split, the choice is the
user's (:attr:`Series.candidates`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable

from tb_stagnation import records, storage
from tb_stagnation.checkpoints import formats
from tb_stagnation.checkpoints.formats import DCP, KERAS, LIGHTNING, SAFETENSORS, TENSORFLOW, TORCH, dcp

# Families: how a series was written, which decides how its steps are read. A family is its
# checkpoints' format (formats.FORMATS), except HF: Hugging Face's checkpoint-N folders, whose
# model is safetensors or torch and whose step is in trainer_state.json.
HF = "hf"
PEFT = "peft"  # folders PEFT's save_pretrained wrote an adapter into (HF checkpoint-N/ are HF)

# What the formats looked for are, for the message when nothing is found.
LOOKED_FOR = (
    "Hugging Face checkpoint-N/ folders (model.safetensors, sharded model-*-of-*.safetensors with "
    "model.safetensors.index.json, pytorch_model.bin; PEFT adapter_model.safetensors or .bin with adapter_config.json, there or "
    "in any folder save_pretrained wrote), Lightning .ckpt, PyTorch state dicts "
    "(.pt, .pth), .safetensors, TF2 CheckpointManager ckpt-N and TF1 Saver model.ckpt-N bundles "
    "(.index + .data-*), Keras .weights.h5 and .keras, torch.distributed.checkpoint directories "
    "(.metadata + .distcp shards: FSDP2/torchtitan step-N/, Lightning FSDP .ckpt folders, HF Trainer FSDP "
    "checkpoint-N/pytorch_model_fsdp_0/)"
)
# Where each family's step comes from, in the order tried (for messages and the README).
AXIS_SOURCES = {
    HF: "trainer_state.json global_step, else the folder's N",
    LIGHTNING: "the checkpoint's global_step, else step=S in its name",
    TORCH: "global_step/step in the file, else a number in its name",
    SAFETENSORS: "a number in the file name",
    TENSORFLOW: "a tracked step variable (global_step, step, optimizer iterations), else "
                "model.ckpt-STEP; a TF2 ckpt-N counts saves, not steps",
    PEFT: "a number in the adapter folder's name (save_pretrained(f'adapters/step-{step}'))",
    KERAS: "the epoch in the file name (ModelCheckpoint's {epoch} is 1-based; the TensorBoard "
           "callback's epoch axis is 0-based, so epoch E is placed at E-1)",
    DCP: "Lightning's meta.pt global_step, else step=S or step-N in the directory's name, else a number in it "
         "(HF Trainer FSDP folders: as HF)",
}
# How to keep more than one checkpoint, per family.
KEEP_MORE = {
    HF: "TrainingArguments(save_strategy='steps', save_steps=N) keeps every checkpoint unless "
        "save_total_limit is set",
    LIGHTNING: "ModelCheckpoint(save_top_k=-1, every_n_train_steps=N)",
    TORCH: "save torch.save(model.state_dict(), f'model_{step}.pt') every N steps",
    SAFETENSORS: "save one numbered file per checkpoint",
    TENSORFLOW: "tf.train.CheckpointManager(..., max_to_keep=None) / tf.compat.v1.train.Saver(max_to_keep=None)",
    PEFT: "model.save_pretrained(f'adapters/step-{step}') every N steps",
    KERAS: "keras.callbacks.ModelCheckpoint('ckpt/model.{epoch:03d}.weights.h5', save_weights_only=True)",
    DCP: "dcp.save(state, checkpoint_id=f'checkpoint/step-{step}') every N steps (torchtitan: "
         "checkpoint.keep_latest_k=0)",
}

_HF_FOLDER = re.compile(r"^checkpoint-(\d+)$")
_HF_MODEL_FILES = ("model.safetensors.index.json", "model.safetensors", "adapter_model.safetensors",
                   "pytorch_model.bin", "adapter_model.bin")
_PEFT_FILES = ("adapter_model.safetensors", "adapter_model.bin")  # beside adapter_config.json
# Training state saved beside a model that is not the model.
_NOT_MODEL = re.compile(r"^(optimizer|scheduler|scaler|rng_state[^.]*|training_args|trainer_state)\.|optim", re.I)
_STEP_IN_NAME = re.compile(r"(?:^|[^a-z])(?:global_step|step|iter|iteration)[=_-]?(\d+)", re.I)
_EPOCH_IN_NAME = re.compile(r"(?:^|[^a-z])epoch[=_-]?(\d+)", re.I)
_NUMBER = re.compile(r"\d+")
_TF1_NAME = re.compile(r"^model\.ckpt-(\d+)$")
_TF2_NAME = re.compile(r"^ckpt-(\d+)$")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One checkpoint as found: what a reader opens, and what its name says."""

    path: str  # a file, an HF folder, or a TF bundle's prefix
    format: str  # a :data:`formats.FORMATS` name
    label: str  # the path relative to the directory searched, for messages

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclasses.dataclass(frozen=True)
class Placed:
    """A checkpoint on its series' training axis."""

    checkpoint: Checkpoint
    step: int
    reader: formats.CheckpointReader


@dataclasses.dataclass
class Series:
    """The checkpoints of one training run and the run directory they belong to."""

    directory: str
    family: str
    checkpoints: list[Checkpoint]
    target: str | None = None  # None: ambiguous, see candidates
    candidates: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Placement:
    """A series' checkpoints in training order, and what could not be placed."""

    axis: str  # records.STEP, EPOCH or ORDER
    placed: list[Placed]
    notes: list[str]  # one line per checkpoint left out, and why


def discover(src: str) -> list[Series]:
    """Every series of checkpoints under ``src``, each with its run directory."""
    found: dict[tuple[str, str], list[Checkpoint]] = {}
    event_dirs: set[str] = set()
    for directory, dirs, files in storage.walk(src):  # a local path or a URL
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        if any("tfevents" in f for f in files):
            event_dirs.add(directory)
        hf = _HF_FOLDER.match(os.path.basename(directory))
        if hf and any(f in files for f in _HF_MODEL_FILES):
            found.setdefault((os.path.dirname(directory), HF), []).append(_hf_checkpoint(directory, files, src))
            dirs[:] = []  # optimizer.pt and the rest in there are not models
            continue
        if dcp.is_dcp(files):  # a DCP checkpoint is a directory; HF Trainer FSDP's sits in checkpoint-N
            if not _NOT_MODEL.search(os.path.basename(directory)):  # optimizer_0/ beside pytorch_model_fsdp_0/
                parent = os.path.dirname(directory)
                key = (os.path.dirname(parent), HF) if _HF_FOLDER.match(os.path.basename(parent)) else (parent, DCP)
                found.setdefault(key, []).append(Checkpoint(directory, DCP, os.path.relpath(directory, src)))
            dirs[:] = []  # its meta.pt (Lightning) is no model either
            continue
        if "adapter_config.json" in files and any(f in files for f in _PEFT_FILES):
            # read as an HF folder; the folders save_pretrained was given are the series (HF's checkpoint-N too)
            save = _peft_save(directory)
            family = HF if _HF_FOLDER.match(os.path.basename(save)) else PEFT
            found.setdefault((os.path.dirname(save), family), []).append(_hf_checkpoint(directory, files, src))
            continue
        for name in sorted(files):
            kind = _kind(name, files)
            if kind is not None:
                fmt, path = kind
                path = os.path.join(directory, path)
                found.setdefault((directory, fmt), []).append(Checkpoint(path, fmt, os.path.relpath(path, src)))
    series = [Series(d, family, sorted(ckpts, key=lambda c: c.path)) for (d, family), ckpts in sorted(found.items())]
    for s in series:
        s.target, s.candidates = _run_directory(s.directory, src, event_dirs)
    return series


def _hf_checkpoint(folder: str, files: list[str], src: str) -> Checkpoint:
    """An HF ``checkpoint-N`` folder: safetensors (one file or shards) before the older .bin."""
    fmt = TORCH if not any(f.endswith(".safetensors") or f.endswith(".index.json") for f in files) else SAFETENSORS
    path = folder
    if fmt == TORCH:
        path = os.path.join(folder, "pytorch_model.bin" if "pytorch_model.bin" in files else "adapter_model.bin")
    elif "model.safetensors.index.json" not in files and "model.safetensors" not in files:
        path = os.path.join(folder, "adapter_model.safetensors")
    return Checkpoint(path, fmt, os.path.relpath(folder, src))


def _peft_save(folder: str) -> str:
    """The folder ``save_pretrained`` was given, for an adapter found in ``folder``.

    PEFT saves its default adapter there and one named ``x`` in ``<there>/x/``:
    a folder whose name holds no number inside one whose name does
    (``checkpoint-10/sft``, ``adapters/step-5/sft``) is a named adapter's.
    """
    parent = os.path.dirname(folder)
    named = not _NUMBER.search(os.path.basename(folder)) and _NUMBER.search(os.path.basename(parent))
    return parent if named else folder


def _kind(name: str, files: Iterable[str]) -> tuple[str, str] | None:
    """(format, path relative to its directory) of a file that is a checkpoint; the format is its family."""
    if _NOT_MODEL.search(name):
        return None
    if name.endswith(".ckpt"):
        return LIGHTNING, name
    if name.endswith((".pt", ".pth")) or (name.startswith("pytorch_model") and name.endswith(".bin")):
        return TORCH, name
    if name.endswith(".safetensors"):
        return SAFETENSORS, name
    if name.endswith((".weights.h5", ".keras")):
        return KERAS, name
    if name.endswith(".index"):
        prefix = name.removesuffix(".index")
        if any(f.startswith(prefix + ".data-") for f in files):
            return TENSORFLOW, prefix
    return None


def _run_directory(directory: str, src: str, event_dirs: set[str]) -> tuple[str | None, list[str]]:
    """The run directory of checkpoints in ``directory``: (it, []) or (None, candidates)."""
    src = storage.normpath(src)
    level = storage.normpath(directory)
    while True:
        if level in event_dirs:
            return level, []
        below = sorted(d for d in event_dirs if d.startswith(level + os.sep))
        if len(below) == 1:
            return below[0], []
        if below:
            train = [d for d in below if os.path.basename(d) == "train"]
            return (train[0], []) if len(train) == 1 else (None, below)
        if level == src or storage.parent(level) == level or not level.startswith(src):
            return _just_above(src), []
        level = storage.parent(level)


def _just_above(src: str) -> str:
    """SRC, or its parent when SRC is a run's checkpoint folder (the parent holds the run's events).

    ``tb-stagnation checkpoints lightning_logs/version_0/checkpoints`` means version_0's run.
    """
    parent = storage.parent(src if storage.is_url(src) else os.path.abspath(src))
    beside = any("tfevents" in f for f in storage.listdir(parent))
    return storage.parent(src) if beside and not any("tfevents" in f for f in storage.listdir(src)) else src


def place(series: Series) -> Placement:
    """The series' readable checkpoints in training order, on one axis.

    Unreadable checkpoints are left out with a note naming the file and why,
    as are checkpoints that cannot be placed among the others (an unnumbered
    file beside numbered ones) and duplicates of a step (Lightning's
    ``last.ckpt`` beside the file it copies).
    """
    notes: list[str] = []
    steps: list[tuple[Checkpoint, int | None, str, formats.CheckpointReader]] = []
    for checkpoint in series.checkpoints:
        reader = formats.open_checkpoint(checkpoint.path, checkpoint.format)
        try:
            if not reader.tensors():
                notes.append(f"{checkpoint.label}: no floating-point model tensors in it")
                continue
            step, axis = _step(series.family, checkpoint, reader)
        except formats.UnreadableCheckpoint as e:
            notes.append(f"{checkpoint.label}: unreadable, skipped ({e})")
            continue
        steps.append((checkpoint, step, axis, reader))
    numbered = [s for s in steps if s[1] is not None]
    if numbered and len(numbered) < len(steps):
        for checkpoint, *_ in (s for s in steps if s[1] is None):
            notes.append(f"{checkpoint.label}: its name gives no step to place it among the others, skipped")
        steps = numbered
    axes = {axis for _, step, axis, _ in steps if step is not None}
    if len(axes) > 1:  # e.g. some .pt files named by epoch, others by step
        keep = records.STEP if records.STEP in axes else sorted(axes)[0]
        for checkpoint, _, axis, _ in steps:
            if axis != keep:
                notes.append(f"{checkpoint.label}: counts {axis}s where the others count {keep}s, skipped")
        steps = [s for s in steps if s[2] == keep]
    if not numbered:  # unnumbered files: in order of modification
        steps.sort(key=lambda s: (_mtime(s[0].path), s[0].path))
        steps = [(c, i, records.ORDER, r) for i, (c, _, _, r) in enumerate(steps)]
    axis = steps[0][2] if steps else records.STEP
    placed: dict[int, Placed] = {}
    for checkpoint, step, _, reader in sorted(steps, key=lambda s: (s[1], s[0].name.startswith("last"), s[0].path)):
        if step in placed:
            notes.append(f"{checkpoint.label}: the same step ({step}) as {placed[step].checkpoint.label}, skipped")
            continue
        placed[step] = Placed(checkpoint, step, reader)
    return Placement(axis, list(placed.values()), notes)


def _step(family: str, checkpoint: Checkpoint, reader: formats.CheckpointReader) -> tuple[int | None, str]:
    """A checkpoint's step and what it counts, from what its format records (AXIS_SOURCES)."""
    name = checkpoint.name
    if family == PEFT:  # the folder save_pretrained was given names the step
        folder = checkpoint.path if storage.isdir(checkpoint.path) else os.path.dirname(checkpoint.path)
        name = os.path.basename(_peft_save(folder))
    if family == HF:
        folder = os.path.dirname(checkpoint.path) if checkpoint.format in (TORCH, DCP) or not storage.isdir(checkpoint.path) else checkpoint.path
        folder = _peft_save(folder)  # a named adapter's folder inside checkpoint-N/
        return _trainer_state_step(folder), records.STEP
    if family == KERAS:
        number = _NUMBER.search(name)
        return (int(number.group()) - 1, records.EPOCH) if number else (None, records.ORDER)
    recorded = reader.recorded_step()
    if recorded is not None:
        return recorded, records.STEP
    if family == TENSORFLOW:
        tf1, tf2 = _TF1_NAME.match(name), _TF2_NAME.match(name)
        if tf1:
            return int(tf1.group(1)), records.STEP
        if tf2:
            return int(tf2.group(1)), records.ORDER  # a save counter: the order, not the step
    step, epoch = _STEP_IN_NAME.search(name), _EPOCH_IN_NAME.search(name)
    if step:
        return int(step.group(1)), records.STEP
    if epoch:
        return int(epoch.group(1)), records.EPOCH
    numbers = _NUMBER.findall(os.path.splitext(name)[0])
    if numbers and family != LIGHTNING:
        return int(numbers[-1]), records.STEP
    return None, records.ORDER


def _trainer_state_step(folder: str) -> int:
    """HF: ``trainer_state.json``'s global_step (the axis of its TB scalars), else the folder's N."""
    try:
        step = json.loads(storage.read_bytes(os.path.join(folder, "trainer_state.json"))).get("global_step")
        if isinstance(step, int):
            return step
    except (OSError, ValueError, AttributeError, storage.StorageError):
        pass
    return int(_HF_FOLDER.match(os.path.basename(folder)).group(1))


def _mtime(path: str) -> float:
    for candidate in (path, path + ".index"):
        modified = storage.mtime(candidate)
        if modified is not None:
            return modified
    return 0.0
