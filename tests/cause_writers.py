"""Runs with a known cause, trained by the real frameworks: ``python cause_writers.py {torch,tf1,keras,init} LOGDIR``.

Each framework runs in a process of its own (TensorFlow's graph mode is
global state). Every run logs a histogram of every tensor of its model, named
as the framework names it, as its users do:

torch (``SummaryWriter.add_histogram`` of ``model.state_dict()``):
  ``bn_eval``       a CNN whose ``bn2`` is left in ``eval()`` while the rest trains: bn2's running
                    statistics never change, its weight and bias do;
  ``bn_train``      the same CNN, every module in training mode;
  ``relu_dying``    an MLP trained by SGD at a learning rate far too high, logging the ReLU outputs
                    ``fc1.output`` and ``fc2.output``: most units die within a few steps;
  ``relu_healthy``  the same MLP at a sane learning rate: about half of each output is 0, as
                    ever with ReLU.
tf1 (``tf.compat.v1`` graph, ``tf.compat.v1.summary.histogram(var.op.name, var)``):
  ``update_ops_skipped``  dense1 (with its bias) -> batch norm -> ReLU -> logits, the batch norm
                          written as ``tf.layers.batch_normalization`` writes it (moving averages
                          assigned by ops in ``tf.GraphKeys.UPDATE_OPS``), trained by a train op
                          that does not depend on them: the moving mean and variance stay at 0
                          and 1;
  ``update_ops_run``      the same, the train op under ``tf.control_dependencies(UPDATE_OPS)``.
keras (``model.fit`` with Keras' ``TensorBoard(histogram_freq=1)`` callback, SGD):
  ``dense_bn``      Dense (bias started at 0.1) -> BatchNormalization -> ReLU -> Dense: the first
                    Dense's bias gets no gradient;
  ``bn_frozen``     the same with the BatchNormalization set ``trainable = False``: Keras runs it in
                    inference mode, its moving statistics never change.
init (no events: ``torch.save(model.state_dict())`` as ``<run>/model_step<N>.pt`` at steps 0, 4, ... 24 of
Adam, for ``tb-stagnation checkpoints``):
  ``unit_normal``   a CNN (conv1 -> conv2 -> fc1 -> fc2) whose conv2 and fc1 weights are re-initialised
                    with ``torch.nn.init.normal_(std=1.0)``, the rest as torch initialises it;
  ``default``       the same CNN as torch initialises it;
  ``unit_normal_writer``  the ``unit_normal`` training logged by ``TorchUpdateRatioTracker`` every 4 steps
                    instead (events, exact records).
"""

from __future__ import annotations

import os
import sys

import numpy as np

STEPS, LOG_EVERY = 60, 5


def _data(seed: int, n: int = 256, features: int = 16, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A separable toy task: the class is the argmax of a fixed projection of the inputs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return x, y


def write_torch(logdir: str) -> None:
    import torch
    from torch import nn
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    x, y = _data(0)
    images = torch.tensor(np.resize(x, (len(x), 1, 8, 8)))
    labels = torch.tensor(y)

    class CNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 4)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            t = torch.relu(self.bn1(self.conv1(t)))
            t = torch.relu(self.bn2(self.conv2(t)))
            return self.fc(t.mean(dim=(2, 3)))

    for run, eval_bn2 in (("bn_eval", True), ("bn_train", False)):
        torch.manual_seed(0)
        model = CNN()
        model.train()
        if eval_bn2:
            model.bn2.eval()  # the bug: a module left in eval mode (e.g. after a frozen-backbone helper)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        writer = SummaryWriter(os.path.join(logdir, run))
        for step in range(STEPS + 1):
            if step % LOG_EVERY == 0:
                for name, tensor in model.state_dict().items():
                    writer.add_histogram(name, tensor, step)
            batch = torch.randint(0, len(images), (32,))
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        writer.close()

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.out = nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 4)

        def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
            h1 = torch.relu(self.fc1(t))
            h2 = torch.relu(self.fc2(h1))
            return self.out(h2), h1, h2

    inputs = torch.tensor(x)
    for run, lr in (("relu_dying", 10.0), ("relu_healthy", 0.05)):
        torch.manual_seed(0)
        model = MLP()
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        writer = SummaryWriter(os.path.join(logdir, run))
        for step in range(STEPS + 1):
            batch = torch.randint(0, len(inputs), (64,))
            logits, h1, h2 = model(inputs[batch])
            if step % LOG_EVERY == 0:
                for name, tensor in model.state_dict().items():
                    writer.add_histogram(name, tensor, step)
                writer.add_histogram("fc1.output", h1.detach(), step)
                writer.add_histogram("fc2.output", h2.detach(), step)
            loss = nn.functional.cross_entropy(logits, labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        writer.close()


def write_tf1(logdir: str) -> None:
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    x, y = _data(1)
    for run, run_updates in (("update_ops_skipped", False), ("update_ops_run", True)):
        graph = tf1.Graph()
        with graph.as_default():
            tf1.set_random_seed(0)
            inputs = tf1.placeholder(tf.float32, (None, 16))
            labels = tf1.placeholder(tf.int64, (None,))
            with tf1.variable_scope("dense1"):
                kernel = tf1.get_variable("kernel", (16, 32), initializer=tf1.glorot_uniform_initializer())
                bias = tf1.get_variable("bias", (32,), initializer=tf1.constant_initializer(0.1))  # the tutorials' 0.1
                h = tf.matmul(inputs, kernel) + bias
            with tf1.variable_scope("batch_normalization"):
                gamma = tf1.get_variable("gamma", (32,), initializer=tf1.ones_initializer())
                beta = tf1.get_variable("beta", (32,), initializer=tf1.zeros_initializer())
                moving_mean = tf1.get_variable("moving_mean", (32,), initializer=tf1.zeros_initializer(), trainable=False)
                moving_var = tf1.get_variable("moving_variance", (32,), initializer=tf1.ones_initializer(), trainable=False)
                mean, var = tf.nn.moments(h, axes=[0])
                for stat, value in ((moving_mean, mean), (moving_var, var)):
                    tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, tf1.assign(stat, 0.9 * stat + 0.1 * value))
                h = tf.nn.relu(tf.nn.batch_normalization(h, mean, var, beta, gamma, 1e-3))
            with tf1.variable_scope("logits"):
                w = tf1.get_variable("kernel", (32, 4), initializer=tf1.glorot_uniform_initializer())
                b = tf1.get_variable("bias", (4,), initializer=tf1.zeros_initializer())
                logits = tf.matmul(h, w) + b
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
            updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS) if run_updates else []
            with tf1.control_dependencies(updates):
                train = tf1.train.GradientDescentOptimizer(0.5).minimize(loss)
            summaries = tf1.summary.merge([tf1.summary.histogram(v.op.name, v) for v in tf1.global_variables()
                                           if "Adam" not in v.op.name and "power" not in v.op.name])
            writer = tf1.summary.FileWriter(os.path.join(logdir, run))
            rng = np.random.default_rng(0)
            with tf1.Session(graph=graph) as sess:
                sess.run(tf1.global_variables_initializer())
                for step in range(STEPS + 1):
                    if step % LOG_EVERY == 0:
                        writer.add_summary(sess.run(summaries), step)
                    batch = rng.integers(0, len(x), 32)
                    sess.run(train, {inputs: x[batch], labels: y[batch]})
            writer.close()


def write_keras(logdir: str) -> None:
    import keras

    x, y = _data(2)
    for run, frozen_bn in (("dense_bn", False), ("bn_frozen", True)):
        keras.utils.set_random_seed(0)
        norm = keras.layers.BatchNormalization(name="bn")
        norm.trainable = not frozen_bn
        model = keras.Sequential([
            keras.Input((16,)),
            keras.layers.Dense(32, bias_initializer=keras.initializers.Constant(0.1), name="dense1"),
            norm,
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(4, name="logits"),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        board = keras.callbacks.TensorBoard(os.path.join(logdir, run), histogram_freq=1, write_graph=False)
        model.fit(x, y, batch_size=32, epochs=12, verbose=0, callbacks=[board])


def write_init(logdir: str) -> None:
    import torch
    from torch import nn
    from torch.utils.tensorboard import SummaryWriter

    from tb_stagnation.summary import TorchUpdateRatioTracker

    x, y = _data(3)
    images, labels = torch.tensor(np.resize(x, (len(x), 1, 8, 8))), torch.tensor(y)
    for run, unit_normal in (("unit_normal", True), ("default", False)):
        torch.manual_seed(0)
        model = nn.Sequential()
        model.add_module("conv1", nn.Conv2d(1, 16, 3, padding=1))
        model.add_module("relu1", nn.ReLU())
        model.add_module("conv2", nn.Conv2d(16, 32, 3, padding=1))
        model.add_module("relu2", nn.ReLU())
        model.add_module("flat", nn.Flatten())
        model.add_module("fc1", nn.Linear(32 * 8 * 8, 32))
        model.add_module("relu3", nn.ReLU())
        model.add_module("fc2", nn.Linear(32, 4))
        if unit_normal:
            for layer in (model.conv2, model.fc1):
                nn.init.normal_(layer.weight, std=1.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        os.makedirs(os.path.join(logdir, run))
        writer = SummaryWriter(os.path.join(logdir, f"{run}_writer")) if unit_normal else None
        tracker = TorchUpdateRatioTracker(model.named_parameters(), writer, every=4) if unit_normal else None
        for step in range(25):
            if step % 4 == 0:
                torch.save(model.state_dict(), os.path.join(logdir, run, f"model_step{step}.pt"))
            if tracker is not None:
                tracker.step(step)
            batch = slice(step * 32 % len(x), step * 32 % len(x) + 32)
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
        if tracker is not None:
            tracker.close()
            writer.close()


if __name__ == "__main__":
    {"torch": write_torch, "tf1": write_tf1, "keras": write_keras, "init": write_init}[sys.argv[1]](sys.argv[2])
