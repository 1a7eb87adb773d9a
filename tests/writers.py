"""Write the reference log directory with each real writer users have.

Run as ``python tests/writers.py WRITER LOGDIR`` (one process per writer, so
TF1 graph mode, TF2 and PyTorch never share an interpreter). Every writer
logs the same story, one run named ``train``:

- ``conv1`` (kernel 3x3x8x16, bias) and ``out`` (kernel 64x10, bias): trained
  normally;
- ``dense`` (kernel 64x64, bias): trained normally;
- ``frozen`` (kernel 64x64, bias): never updated;
- ``slow`` (kernel 64x64, bias): trained at 1e-5 x the learning rate.

Except for Keras (a real ``model.fit``), the parameters follow a
deterministic numpy "training": each step shrinks weights towards a target
and adds noise, so the distribution changes at first order, as in training.
"""

from __future__ import annotations

import os
import sys

import numpy as np

STEPS = 60
LOG_EVERY = 3
LR = 0.02
SLOW_FACTOR = 1e-5
SHAPES = {
    "conv1": ((3, 3, 8, 16), (16,)),
    "dense": ((64, 64), (64,)),
    "frozen": ((64, 64), (64,)),
    "slow": ((64, 64), (64,)),
    "out": ((64, 10), (10,)),
}
MOVING = ("conv1", "dense", "out")


def snapshots():
    """Yield (step, {layer: (kernel, bias)}) every LOG_EVERY steps."""
    rng = np.random.default_rng(0)
    params = {
        name: [rng.normal(0, 0.1, k).astype(np.float32), np.full(b, 0.1, np.float32)]
        for name, (k, b) in SHAPES.items()
    }
    targets = {name: [rng.normal(0.05, 0.3, p.shape) for p in ps] for name, ps in params.items()}
    for step in range(STEPS):
        if step % LOG_EVERY == 0:
            yield step, {name: tuple(p.copy() for p in ps) for name, ps in params.items()}
        for name, ps in params.items():
            if name == "frozen":
                continue
            lr = LR * (SLOW_FACTOR if name == "slow" else 1.0)
            for i, (p, t) in enumerate(zip(ps, targets[name][:])):
                grad = (p - t) + rng.normal(0, 0.05, p.shape)
                ps[i] = (p - lr * grad).astype(np.float32)


def write_tf2(logdir: str) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(os.path.join(logdir, "train"))
    with writer.as_default():
        for step, params in snapshots():
            for name, (kernel, bias) in params.items():
                tf.summary.histogram(f"{name}/kernel", kernel, step=step)
                tf.summary.histogram(f"{name}/bias", bias, step=step)
    writer.close()


def write_tf1(logdir: str) -> None:
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    graph = tf1.Graph()
    with graph.as_default():
        feeds, summaries = {}, []
        for name, (kshape, bshape) in SHAPES.items():
            for part, shape in (("weights", kshape), ("biases", bshape)):
                ph = tf1.placeholder(tf.float32, shape, name=f"{name}_{part}")
                feeds[(name, part)] = ph
                summaries.append(tf1.summary.histogram(f"{name}/{part}", ph))
        merged = tf1.summary.merge(summaries)
        writer = tf1.summary.FileWriter(os.path.join(logdir, "train"))
        with tf1.Session(graph=graph) as sess:
            for step, params in snapshots():
                feed = {}
                for name, (kernel, bias) in params.items():
                    feed[feeds[(name, "weights")]] = kernel
                    feed[feeds[(name, "biases")]] = bias
                writer.add_summary(sess.run(merged, feed_dict=feed), step)
        writer.close()


def _write_torch_style(writer_cls, logdir: str) -> None:
    writer = writer_cls(os.path.join(logdir, "train"))
    for step, params in snapshots():
        for name, (kernel, bias) in params.items():
            writer.add_histogram(f"{name}.weight", kernel, step)
            writer.add_histogram(f"{name}.bias", bias, step)
    writer.close()


def write_torch(logdir: str) -> None:
    from torch.utils.tensorboard import SummaryWriter

    _write_torch_style(SummaryWriter, logdir)


def write_tensorboardx(logdir: str) -> None:
    from tensorboardX import SummaryWriter

    _write_torch_style(SummaryWriter, logdir)


def write_keras(logdir: str) -> None:
    """A real ``model.fit`` with Keras' own TensorBoard callback.

    The slow layer's update is scaled by SLOW_FACTOR after every batch, the
    same as training it at 1e-5 x the learning rate with plain SGD.
    """
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 6, 6, 8)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64) + 2 * (x[:, 0, 0, 0] > 0)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 8)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu", name="dense_in"),
            keras.layers.Dense(64, activation="relu", name="dense"),
            keras.layers.Dense(64, activation="relu", name="frozen", trainable=False),
            keras.layers.Dense(64, activation="relu", name="slow"),
            keras.layers.Dense(10, name="out"),
        ],
        name="sequential",
    )
    slow = model.get_layer("slow")

    class SlowDown(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.before = [w.numpy() for w in slow.weights]

        def on_train_batch_end(self, batch, logs=None):
            for var, old in zip(slow.weights, self.before):
                var.assign(old + SLOW_FACTOR * (var.numpy() - old))

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    tb = keras.callbacks.TensorBoard(log_dir=logdir, histogram_freq=1)
    model.fit(x, y, batch_size=32, epochs=12, verbose=0, callbacks=[SlowDown(), tb])


WRITERS = {
    "tf1": write_tf1,
    "tf2": write_tf2,
    "keras": write_keras,
    "torch": write_torch,
    "tensorboardx": write_tensorboardx,
}

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    WRITERS[sys.argv[1]](sys.argv[2])
