"""Train small TF2 models whose layers learn at very different paces, for the Stagnation tab.

Writes one log directory with one run per story below. Every run logs, for
every layer, a histogram of each parameter (``<layer>/<weight>``, e.g.
``conv1/kernel``, ``bn1/moving_mean``) and of its gradient
(``<layer>/<weight>/gradient``) every ``--log-every`` steps, the exact update
ratio ||W_t - W_t-k|| / ||W_t-k|| per step of every parameter through
``tb_stagnation.summary.TF2UpdateRatioTracker`` every ``--exact-every`` steps
(named by ``variable.path``, which equals the histogram tag because every layer
is named explicitly), and ``train/loss`` and ``train/accuracy`` scalars.
Step ``t`` means "after ``t`` updates": parameters, gradient, loss and exact
ratio logged at step ``t`` all describe the same weights.

The task is synthetic and offline: 16x16 grey images of four classes
(horizontal, vertical or diagonal stripes of random period and phase, or a
blob at a random place) under pixel noise as strong as the pattern, generated
from ``--seed``.

Runs, and what the Stagnation tab shows for each (figures: default
arguments, seed 0; "per step" scores are the ranking's medians):

``tiny_lr``
    The 5-layer ReLU CNN (8 channels, 3x3, stride 2 in conv2 and conv4,
    global average pooling), Glorot-uniform kernels, biases at 0.1, Adam at
    1e-4. In the Histograms and Distributions views the biases leave their
    spike at 0.1 and spread out while the kernels' bands look fixed, and
    histogram drift agrees: in every conv layer the bias drifts faster than
    the kernel (2.5-5.5e-4 against 2.1-4.5e-4 per step). The exact update
    ratios show the kernels do not stand still: about 5e-4 per step, as fast
    relative to their size as the biases (3-7e-4). Adam moves every weight by
    up to the learning rate, but a kernel's weights mostly trade places
    within the same distribution, so its histogram sees about half of the
    movement (conv2-conv5), against 80% of the biases'. Every kernel is
    ``moving``; the run is merely slow: the loss leaves chance only after
    ~300 steps and is 0.7 at step 800, where ``healthy`` is at 0.1 by step 160.
``vanishing``
    Eight 64-unit sigmoid dense layers (Glorot, zero biases) and a linear
    classifier, plain SGD at 0.5. Backpropagation through each sigmoid
    (derivative at most 1/4) shrinks the gradient, so kernel scores fall
    roughly 4x per layer from the output: ``logits/kernel`` about 3e-3 per
    step, ``dense8`` 5e-4, ``dense1`` 1e-7. The ``dense1``-``dense5`` kernels
    are ``stagnant``; the layer profile is a steep ramp and the loss stays at
    chance (ln 4). The biases started at 0, so their ratios are relative to a
    small norm and all look ``moving``: read the kernels.
``batchnorm``
    Three convolutions (He-normal, no bias: a bias in front of batch norm
    gets no gradient), each followed by ``bn1``-``bn3``, Adam at 1e-3. The
    four batch-norm tensors of a layer move at four different paces.
    ``gamma`` is always the slowest (1-4e-4 per step: the scale barely needs
    to change); ``beta`` (started at 0) and the moving statistics move 2-50x
    faster, ``bn1/moving_mean`` fastest at about 6e-3 per step (it follows
    every batch's mean with momentum 0.99).
``bn_frozen``
    ``batchnorm``'s network with ``bn2.trainable = False``, as when a batch norm is frozen for
    fine-tuning. Keras then runs bn2 in inference mode: its moving mean and variance stay at 0 and 1
    (so it normalises with them at inference too) while gamma and beta stop training. The findings
    name the cause and the fix: ``norm_stats_frozen`` for ``bn2/moving_mean`` and
    ``bn2/moving_variance`` (a Keras layer frozen or called with ``training=False``, or TF1's
    ``UPDATE_OPS`` not run), then ``frozen`` for ``bn2/gamma`` and ``bn2/beta``; the other layers move.
``frozen_layer``
    ``healthy``'s network with ``conv3.trainable = False``. ``conv3/kernel``
    and ``conv3/bias`` are ``frozen`` (every histogram identical, exact ratio
    exactly 0, no gradient histogram) and sink to the bottom of the ranking,
    while every other layer keeps ``moving``: the rest of the network learns
    around the random conv3 and still fits the data.
``healthy``
    The same CNN with He-normal kernels, zero biases and Adam at 1e-3. Every
    parameter is ``moving``: kernels 1.6-5e-4 per step, biases 0.5-1.7e-3,
    the slowest still 30x above the stagnant threshold.

The ``frozen_layer`` run (``--checkpoint-run``) also keeps TF2 checkpoints
(``tf.train.CheckpointManager`` with a tracked step) in ``<run>/checkpoints``
every ``--checkpoint-every`` steps, and the script imports them with
``tb-stagnation checkpoints`` at the end, so the tab shows that run's
histogram, exact and checkpoint movement side by side.

Usage: ``python demo/train.py --logdir logs/demo`` then
``tensorboard --logdir logs/demo``. A run's directory is emptied before it is
written, so rerunning never mixes two trainings in one run. Given the seed, the
logged values are the same on every run of the script (TensorFlow's op
determinism is switched on).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tb_stagnation.summary import TF2UpdateRatioTracker  # noqa: E402

IMAGE_SIZE = 16
NUM_CLASSES = 4
NUM_IMAGES = 4096
BATCH_SIZE = 32
# Pixel noise standard deviation, relative to the unit-amplitude patterns: single
# pixels say little, so a network has to learn the shapes.
NOISE = 1.0


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One network, described by the few knobs the runs differ in.

    ``kind`` is ``"conv"`` (3x3 convolutions, every other one with stride 2,
    then global average pooling) or ``"dense"`` (flattened pixels through
    fully connected layers). Hidden layers are named ``conv1``.../``dense1``...,
    batch-normalisation layers ``bn1``..., the classifier ``logits``.
    """

    kind: str
    depth: int
    width: int
    activation: str
    kernel_initializer: str
    bias_init: float = 0.0
    batchnorm: bool = False
    frozen: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A run: its network and its optimiser (its story is in the module docstring)."""

    name: str
    model: ModelSpec
    optimizer: str  # "adam" or "sgd"
    learning_rate: float


CNN = ModelSpec(
    kind="conv", depth=5, width=8, activation="relu", kernel_initializer="he_normal"
)

RUNS: dict[str, RunSpec] = {
    spec.name: spec
    for spec in (
        RunSpec(
            name="tiny_lr",
            model=dataclasses.replace(
                CNN, kernel_initializer="glorot_uniform", bias_init=0.1
            ),
            optimizer="adam",
            learning_rate=1e-4,
        ),
        RunSpec(
            name="vanishing",
            model=ModelSpec(
                kind="dense",
                depth=8,
                width=64,
                activation="sigmoid",
                kernel_initializer="glorot_uniform",
            ),
            optimizer="sgd",
            learning_rate=0.5,
        ),
        RunSpec(
            name="batchnorm",
            model=dataclasses.replace(CNN, depth=3, batchnorm=True),
            optimizer="adam",
            learning_rate=1e-3,
        ),
        RunSpec(
            name="bn_frozen",
            model=dataclasses.replace(CNN, depth=3, batchnorm=True, frozen=("bn2",)),
            optimizer="adam",
            learning_rate=1e-3,
        ),
        RunSpec(
            name="frozen_layer",
            model=dataclasses.replace(CNN, frozen=("conv3",)),
            optimizer="adam",
            learning_rate=1e-3,
        ),
        RunSpec(
            name="healthy",
            model=CNN,
            optimizer="adam",
            learning_rate=1e-3,
        ),
    )
}


def make_images(seed: int, count: int = NUM_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels; every class is a shape, so only spatial filters separate them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, count)
    rows, cols = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    # Classes 0-2: stripes across rows, across columns, along the diagonal (class 3's
    # direction is a placeholder: its stripes are replaced by the blob below).
    directions = np.array([[1.0, 0.0], [0.0, 1.0], [0.7071, 0.7071], [0.0, 0.0]])
    along = directions[labels]
    projection = along[:, 0, None, None] * rows + along[:, 1, None, None] * cols
    period = rng.uniform(3.0, 6.0, count)[:, None, None]
    phase = rng.uniform(0.0, 2.0 * math.pi, count)[:, None, None]
    stripes = np.sin(2.0 * math.pi * projection / period + phase)
    # Class 3: a Gaussian blob anywhere in the image.
    centre_row, centre_col = rng.uniform(3.0, IMAGE_SIZE - 3.0, (2, count, 1, 1))
    distance2 = (rows - centre_row) ** 2 + (cols - centre_col) ** 2
    blob = 2.0 * np.exp(-distance2 / 8.0)
    clean = np.where((labels == NUM_CLASSES - 1)[:, None, None], blob, stripes)
    images = clean + NOISE * rng.standard_normal(clean.shape)
    images = (images - images.mean()) / images.std()
    return images[..., None].astype(np.float32), labels.astype(np.int32)


def build_model(spec: ModelSpec) -> keras.Model:
    """The network of ``spec``, with explicit layer names so variable paths are the tags."""
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
    x = inputs if spec.kind == "conv" else keras.layers.Flatten(name="flatten")(inputs)
    for index in range(1, spec.depth + 1):
        x = _hidden_layer(spec, index)(x)
        if spec.batchnorm:
            x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        x = keras.layers.Activation(spec.activation, name=f"act{index}")(x)
    if spec.kind == "conv":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inputs, outputs, name=spec.kind)
    for name in spec.frozen:
        model.get_layer(name).trainable = False
    return model


def _hidden_layer(spec: ModelSpec, index: int) -> keras.layers.Layer:
    """Hidden layer ``index`` (1-based); a bias in front of batch norm would get no gradient."""
    common = dict(
        kernel_initializer=spec.kernel_initializer,
        bias_initializer=keras.initializers.Constant(spec.bias_init),
        use_bias=not spec.batchnorm,
    )
    if spec.kind == "conv":
        stride = 2 if index % 2 == 0 else 1
        return keras.layers.Conv2D(
            spec.width, 3, strides=stride, padding="same", name=f"conv{index}", **common
        )
    return keras.layers.Dense(spec.width, name=f"dense{index}", **common)


def make_optimizer(spec: RunSpec) -> keras.optimizers.Optimizer:
    """Adam or plain SGD at the run's learning rate."""
    if spec.optimizer == "adam":
        return keras.optimizers.Adam(spec.learning_rate)
    return keras.optimizers.SGD(spec.learning_rate)


class Trainer:
    """One training loop for every run: summaries, gradients, exact ratios, then the update.

    Each piece is its own compiled function, called from Python, so a step
    that logs nothing runs no summary op at all, and so the exact-ratio
    tracker sees the same weights ``W_t`` that the histograms at step ``t``
    show, before update ``t`` is applied.
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        log_every: int,
        exact_every: int,
    ):
        self.model = model
        self.optimizer = optimizer
        self.log_every = log_every
        self.tracker = TF2UpdateRatioTracker(model.weights, every=exact_every)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        optimizer.build(model.trainable_weights)
        self._trainable = {id(v) for v in model.trainable_weights}

    def train_step(
        self, step: int, images: np.ndarray, labels: np.ndarray
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Update ``t = step``, logging first if due; returns (loss, accuracy) of the batch."""
        due = step % self.log_every == 0
        step_tensor = tf.constant(step, tf.int64)
        if due:
            # Before the forward pass: batch norm's training call updates its moving stats.
            self._log_parameters(step_tensor)
        loss, accuracy, gradients = self._forward_backward(images, labels)
        if due:
            self._log_gradients(step_tensor, gradients, loss, accuracy)
        self.tracker.maybe_log(step, self._aligned(gradients))
        self._apply(gradients)
        return loss, accuracy

    @tf.function
    def _log_parameters(self, step: tf.Tensor) -> None:
        """Every weight, trainable or not (frozen kernels, moving statistics)."""
        for variable in self.model.weights:
            tf.summary.histogram(variable.path, variable.value, step=step)

    @tf.function
    def _forward_backward(
        self, images: tf.Tensor, labels: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            loss = self.loss_fn(labels, logits)
        gradients = tape.gradient(loss, self.model.trainable_weights)
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        accuracy = tf.reduce_mean(tf.cast(predicted == labels, tf.float32))
        return loss, accuracy, gradients

    @tf.function
    def _log_gradients(
        self, step: tf.Tensor, gradients: list[tf.Tensor], loss: tf.Tensor, accuracy: tf.Tensor
    ) -> None:
        for variable, gradient in zip(self.model.trainable_weights, gradients):
            tf.summary.histogram(f"{variable.path}/gradient", gradient, step=step)
        tf.summary.scalar("train/loss", loss, step=step)
        tf.summary.scalar("train/accuracy", accuracy, step=step)

    @tf.function
    def _apply(self, gradients: list[tf.Tensor]) -> None:
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_weights))

    def _aligned(self, gradients: list[tf.Tensor]) -> list[tf.Tensor | None]:
        """Gradients in the order of ``model.weights`` (the tracker's), ``None`` where frozen."""
        remaining = iter(gradients)
        return [next(remaining) if id(w) in self._trainable else None for w in self.model.weights]


def train_run(
    spec: RunSpec,
    images: np.ndarray,
    labels: np.ndarray,
    args: argparse.Namespace,
) -> None:
    """Train one run into ``<logdir>/<run>``, from the same seed whatever the other runs."""
    keras.utils.set_random_seed(args.seed)
    model = build_model(spec.model)
    trainer = Trainer(model, make_optimizer(spec), args.log_every, args.exact_every)
    run_dir = os.path.join(args.logdir, spec.name)
    shutil.rmtree(run_dir, ignore_errors=True)
    writer = tf.summary.create_file_writer(run_dir)
    batches = np.random.default_rng(args.seed).integers(
        0, len(labels), (args.steps, BATCH_SIZE)
    )
    print(f"{spec.name}:", flush=True)
    # Redirected output gets one line per run instead of a redrawn bar.
    progress = keras.utils.Progbar(
        args.steps, verbose=1 if sys.stdout.isatty() else 2, stateful_metrics=["loss", "accuracy"]
    )
    save = _checkpointer(model, run_dir) if spec.name == args.checkpoint_run else None
    with writer.as_default():
        for step, batch in enumerate(batches):
            if save is not None and step % args.checkpoint_every == 0:
                save(step)  # W_t, as the histograms and exact ratios at step t
            loss, accuracy = trainer.train_step(step, images[batch], labels[batch])
            if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
                progress.update(
                    step + 1, [("loss", float(loss)), ("accuracy", float(accuracy))]
                )
    if save is not None:
        save(args.steps)
    writer.close()


def _checkpointer(model: keras.Model, run_dir: str):
    """``save(step)``: a TF2 checkpoint of the model whose tracked ``step`` says when it was taken."""
    step_variable = tf.Variable(0, dtype=tf.int64, name="step")
    checkpoint = tf.train.Checkpoint(step=step_variable, model=model)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), max_to_keep=None)

    def save(step: int) -> None:
        step_variable.assign(step)
        manager.save()

    return save


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--logdir", default="logs/demo", help="one subdirectory per run")
    parser.add_argument("--steps", type=int, default=800, help="training steps per run")
    # Histograms 40 steps apart: far enough that Adam's step-to-step jitter
    # averages out and tiny_lr's kernels look as still as they do in practice.
    parser.add_argument(
        "--log-every", type=int, default=40, help="histogram and scalar logging period (steps)"
    )
    parser.add_argument(
        "--exact-every", type=int, default=20, help="exact update-ratio period (steps)"
    )
    parser.add_argument(
        "--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="subset of runs"
    )
    parser.add_argument("--seed", type=int, default=0, help="data, init and batch order")
    parser.add_argument(
        "--checkpoint-run", default="frozen_layer", choices=[*RUNS, "none"],
        help="the run that keeps checkpoints and imports them (default %(default)s)",
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=100, help="checkpoint period of that run (steps)"
    )
    args = parser.parse_args(argv)
    for name in ("steps", "log_every", "exact_every", "checkpoint_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tf.config.experimental.enable_op_determinism()
    images, labels = make_images(args.seed)
    started = time.perf_counter()
    for name in args.runs:
        train_run(RUNS[name], images, labels, args)
    if args.checkpoint_run in args.runs:
        from tb_stagnation.checkpoints import command

        if command.main([os.path.join(args.logdir, args.checkpoint_run), "--quiet"]) != 0:
            return 1
    print(
        f"{len(args.runs)} runs in {time.perf_counter() - started:.0f} s -> {args.logdir}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
