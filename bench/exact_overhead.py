"""Training-time overhead of ``TF2UpdateRatioTracker`` on a small CNN (CPU, random data).

Runs the same custom TF2 loop with and without the tracker (``every`` = 100 by
default), alternating the two so drifting machine load hits both alike, and
prints the best and median wall time of each, their ratios, and the time
spent inside ``maybe_log`` (the direct measure: on a shared machine the
wall-time ratio is dominated by noise). Between snapshots the tracker only
compares integers, so the overhead is essentially the snapshot cost times
steps / every.

    python bench/exact_overhead.py [--steps 300] [--every 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tb_stagnation.summary import TF2UpdateRatioTracker  # noqa: E402


def five_conv_cnn() -> keras.Model:
    """Five 3x3 convolutions (8-32 filters) on 32x32x3 inputs, then a 10-way classifier."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
        ]
    )


def make_train_step(model: keras.Model):
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return train_step


def run(train_step, batches, tracker: TF2UpdateRatioTracker | None) -> tuple[float, float, int]:
    """Wall time of one loop over ``batches``, the part spent in ``maybe_log``, and the snapshot count."""
    in_tracker, snapshots = 0.0, 0
    start = time.perf_counter()
    for step, (x, y) in enumerate(batches, start=1):
        loss = train_step(x, y)
        if tracker is not None:
            before = time.perf_counter()
            snapshots += tracker.maybe_log(step)
            in_tracker += time.perf_counter() - before
    float(loss)  # wait for the last step before stopping the clock
    return time.perf_counter() - start, in_tracker, snapshots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    batches = [
        (
            tf.constant(rng.normal(size=(args.batch, 32, 32, 3)), tf.float32),
            tf.constant(rng.integers(0, 10, size=args.batch)),
        )
        for _ in range(args.steps)
    ]
    model = five_conv_cnn()
    train_step = make_train_step(model)
    run(train_step, batches[:20], None)  # trace and warm up

    plain, tracked, in_tracker = [], [], []
    with tempfile.TemporaryDirectory() as logdir, tf.summary.create_file_writer(logdir).as_default():
        for _ in range(args.repeats):
            plain.append(run(train_step, batches, None)[0])
            tracker = TF2UpdateRatioTracker(model.weights, args.every)
            total, in_calls, n_snapshots = run(train_step, batches, tracker)
            tracked.append(total)
            in_tracker.append(in_calls)

    n_params = sum(int(np.prod(v.shape)) for v in model.weights)
    spent = statistics.median(in_tracker)
    print(f"model: 5-conv CNN, {n_params} parameters in {len(model.weights)} tensors, "
          f"batch {args.batch}, CPU")
    print(f"steps: {args.steps}, every: {args.every}, repeats: {args.repeats}, alternating")
    for label, times in (("without tracker", plain), ("with tracker", tracked)):
        print(f"{label:16s} min {min(times):.3f} s ({1e3 * min(times) / args.steps:.2f} ms/step), "
              f"median {statistics.median(times):.3f} s")
    print(f"ratio with/without: min {min(tracked) / min(plain):.4f}, "
          f"median {statistics.median(tracked) / statistics.median(plain):.4f}")
    print(f"inside maybe_log ({args.steps} calls, {n_snapshots} snapshots, the first only stores): "
          f"{1e3 * spent:.1f} ms per run = {100 * spent / min(plain):.2f}% of the fastest run without")
    print(f"all runs (s): without {[round(t, 3) for t in plain]}, with {[round(t, 3) for t in tracked]}")


if __name__ == "__main__":
    main()
