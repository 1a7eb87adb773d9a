"""Train a small model with each real framework, keeping its checkpoints as users do.

Run as ``python tests/checkpoint_writers.py FRAMEWORK DIR [STEPS]`` (one
process per framework; STEPS, default 30, trains longer and so keeps more
checkpoints). Every framework trains the same story with Adam:

- ``dense`` and ``out``: trained normally;
- ``frozen``: never updated (``requires_grad=False`` / ``trainable=False``);
- ``slow``: trained at 1e-5 x the learning rate (a parameter group, or a
  second optimizer where the framework has no groups).

Checkpoints are kept every ``EVERY`` optimizer steps with each framework's
own checkpointing, next to its own TensorBoard logging. Where the framework
logs histograms (Keras' callback, or a line in the loop), the same
parameters' histograms are logged too, so their names must meet.
"""

from __future__ import annotations

import os
import sys

import numpy as np

STEPS = 30
EVERY = 10
LR = 1e-2
SLOW_FACTOR = 1e-5
BATCH = 16
MOVING = ("dense", "out")


def data(n: int = STEPS * BATCH) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 1)) + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)
    return x, y


# ------------------------------------------------------------------ PyTorch


def _torch_model():
    from collections import OrderedDict

    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(
        dense=nn.Linear(8, 16), act=nn.Tanh(), frozen=nn.Linear(16, 16), slow=nn.Linear(16, 16), out=nn.Linear(16, 1)
    ))
    model.frozen.requires_grad_(False)
    return model


def _torch_groups(model):
    slow = list(model.slow.parameters())
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("slow.")]
    return [{"params": rest}, {"params": slow, "lr": LR * SLOW_FACTOR}]


class Hyper:
    """A user object among the hyperparameters: torch's weights_only loader refuses it."""

    def __init__(self, width: int) -> None:
        self.width = width


def lightning(root: str) -> None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Module(L.LightningModule):
        def __init__(self, hyper: Hyper) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.model = _torch_model()

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.model(x), y)

        def on_train_batch_end(self, *_):
            if self.global_step % 5 == 0:
                for name, p in self.named_parameters():
                    self.logger.experiment.add_histogram(name, p, self.global_step)

        def configure_optimizers(self):
            return torch.optim.Adam(_torch_groups(self.model), lr=LR)

    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=BATCH)
    trainer = L.Trainer(
        max_steps=STEPS, default_root_dir=root, accelerator="cpu", enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=5,
        callbacks=[ModelCheckpoint(save_top_k=-1, every_n_train_steps=EVERY)],
    )
    trainer.fit(Module(Hyper(16)), loader)


def _hf_train(root: str, model, optimizer) -> None:
    import torch
    from transformers import Trainer, TrainingArguments

    x, y = data()

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return {"x": torch.tensor(x[i]), "labels": torch.tensor(y[i])}

    args = TrainingArguments(
        output_dir=root, max_steps=STEPS, per_device_train_batch_size=BATCH, save_strategy="steps",
        save_steps=EVERY, logging_steps=5, report_to=["tensorboard"], lr_scheduler_type="constant",
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
    )
    Trainer(model=model, args=args, train_dataset=Pairs(), optimizers=(optimizer, None)).train()


def hf(root: str) -> None:
    """A plain ``nn.Module``: the Trainer writes ``model.safetensors`` in every checkpoint."""
    import torch

    class Regressor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _torch_model()

        def forward(self, x, labels=None):
            pred = self.net(x)
            return {"loss": torch.nn.functional.mse_loss(pred, labels), "logits": pred}

    model = Regressor()
    _hf_train(root, model, torch.optim.Adam(_torch_groups(model.net), lr=LR))


def hf_sharded(root: str) -> None:
    """A model built from a config; its ``save_pretrained`` shards at 1 KB, so every checkpoint has shards."""
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

    class TinyConfig(PretrainedConfig):
        model_type = "tiny-regressor"

    class TinyRegressor(PreTrainedModel):
        config_class = TinyConfig

        def __init__(self, config: TinyConfig) -> None:
            super().__init__(config)
            self.net = _torch_model()

        def forward(self, x, labels=None):
            pred = self.net(x)
            return {"loss": torch.nn.functional.mse_loss(pred, labels), "logits": pred}

        def save_pretrained(self, *args, **kwargs):
            return super().save_pretrained(*args, **{**kwargs, "max_shard_size": "1KB"})

    model = TinyRegressor(TinyConfig())
    _hf_train(root, model, torch.optim.Adam(_torch_groups(model.net), lr=LR))


def torch_plain(root: str) -> None:
    """A hand-written loop saving ``model_<step>.pt`` state dicts beside a SummaryWriter's events."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    model = _torch_model()
    optimizer = torch.optim.Adam(_torch_groups(model), lr=LR)
    writer = SummaryWriter(root)
    x, y = (torch.tensor(a) for a in data())
    for step in range(STEPS + 1):
        if step % EVERY == 0:
            torch.save(model.state_dict(), os.path.join(root, f"model_{step}.pt"))
            for name, p in model.named_parameters():
                writer.add_histogram(name, p, step)
        if step == STEPS:
            break
        batch = slice(step * BATCH, (step + 1) * BATCH)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
        optimizer.step()
    torch.save(optimizer.state_dict(), os.path.join(root, "optimizer.pt"))  # not a model: never taken for one
    writer.close()


# --------------------------------------------------------------- TensorFlow


def _keras_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="tanh", name="dense"),
        keras.layers.Dense(16, name="frozen", trainable=False),
        keras.layers.Dense(16, name="slow"),
        keras.layers.Dense(1, name="out"),
    ], name="net")
    return model


def _two_speed_step(model, fast, slow):
    """One Adam step: ``slow`` layer's variables at 1e-5 x the learning rate, by its own optimizer."""
    import tensorflow as tf

    slow_vars = model.get_layer("slow").trainable_variables
    slow_ids = {id(v) for v in slow_vars}
    fast_vars = [v for v in model.trainable_variables if id(v) not in slow_ids]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
        grads = tape.gradient(loss, fast_vars + slow_vars)
        fast.apply_gradients(zip(grads[: len(fast_vars)], fast_vars))
        slow.apply_gradients(zip(grads[len(fast_vars):], slow_vars))
        return loss

    return step


def tf2(root: str) -> None:
    """A custom loop with ``tf.train.CheckpointManager`` and a tracked step; histograms in the same dir."""
    import keras
    import tensorflow as tf

    model = _keras_model()
    fast, slow = keras.optimizers.Adam(LR), keras.optimizers.Adam(LR * SLOW_FACTOR)
    step_var = tf.Variable(0, dtype=tf.int64, name="step")
    checkpoint = tf.train.Checkpoint(step=step_var, model=model, optimizer=fast, slow_optimizer=slow)
    manager = tf.train.CheckpointManager(checkpoint, root, max_to_keep=None)
    train = _two_speed_step(model, fast, slow)
    writer = tf.summary.create_file_writer(root)
    x, y = data()
    with writer.as_default():
        for step in range(STEPS + 1):
            if step % EVERY == 0:
                step_var.assign(step)
                manager.save()
                for v in model.weights:
                    tf.summary.histogram(v.path, v, step=step)
            if step < STEPS:
                train(x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH])
    writer.close()


def tf2_counter(root: str) -> None:
    """A ``CheckpointManager`` with no step tracked: its ``ckpt-N`` counts saves only."""
    import tensorflow as tf

    w = tf.Variable(np.ones((4, 4), np.float32), name="w")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(w=w), root, max_to_keep=None)
    for i in range(3):
        w.assign_add(np.full((4, 4), 0.1 * (i + 1), np.float32))
        manager.save()


def tf1(root: str) -> None:
    """Graph mode with ``tf.compat.v1.train.Saver`` saving ``model.ckpt-STEP`` beside a FileWriter's events."""
    import tensorflow.compat.v1 as tf

    tf.disable_eager_execution()
    x_in, y_in = tf.placeholder(tf.float32, (None, 8)), tf.placeholder(tf.float32, (None, 1))
    init = tf.initializers.glorot_uniform(seed=0)

    def layer(name, inputs, width, trainable=True):
        with tf.variable_scope(name):
            w = tf.get_variable("weights", (inputs.shape[1], width), initializer=init, trainable=trainable)
            b = tf.get_variable("biases", (width,), initializer=tf.constant_initializer(0.1), trainable=trainable)
        tf.summary.histogram(f"{name}/weights", w)
        tf.summary.histogram(f"{name}/biases", b)
        return tf.matmul(inputs, w) + b

    h = tf.tanh(layer("dense", x_in, 16))
    h = layer("frozen", h, 16, trainable=False)
    h = layer("slow", h, 16)
    loss = tf.reduce_mean((layer("out", h, 1) - y_in) ** 2)
    global_step = tf.train.get_or_create_global_step()
    slow_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope="slow")
    fast_vars = [v for v in tf.trainable_variables() if v not in slow_vars]
    train = tf.group(
        tf.train.AdamOptimizer(LR).minimize(loss, var_list=fast_vars, global_step=global_step),
        tf.train.AdamOptimizer(LR * SLOW_FACTOR, name="SlowAdam").minimize(loss, var_list=slow_vars),
    )
    summaries = tf.summary.merge_all()
    saver = tf.train.Saver(max_to_keep=None)
    x, y = data()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        writer = tf.summary.FileWriter(root, sess.graph)
        for step in range(STEPS + 1):
            if step % EVERY == 0:
                saver.save(sess, os.path.join(root, "model.ckpt"), global_step=step)
                writer.add_summary(sess.run(summaries), step)
            if step < STEPS:
                feed = {x_in: x[step * BATCH:(step + 1) * BATCH], y_in: y[step * BATCH:(step + 1) * BATCH]}
                sess.run(train, feed)
        writer.close()


def keras_fit(root: str) -> None:
    """``model.fit`` with ``ModelCheckpoint('{epoch}')`` and the TensorBoard callback (histograms)."""
    import keras
    import tensorflow as tf

    class TwoSpeed(keras.Model):
        """``train_step`` with a second optimizer for the slow layer (Keras has no parameter groups)."""

        def __init__(self, inner):
            super().__init__(name="twospeed")
            self.inner = inner
            self.slow_optimizer = keras.optimizers.Adam(LR * SLOW_FACTOR)

        def call(self, x, training=False):
            return self.inner(x, training=training)

        def train_step(self, batch):
            if not hasattr(self, "_step"):
                self._step = _two_speed_step(self.inner, self.optimizer, self.slow_optimizer)
            return {"loss": self._step(*batch)}

    x, y = data()
    epochs = 3
    wrapped = TwoSpeed(_keras_model())
    wrapped(x[:1])  # built, so that ModelCheckpoint can save it
    wrapped.compile(optimizer=keras.optimizers.Adam(LR), loss="mse")
    tf.random.set_seed(0)
    wrapped.fit(
        x[: EVERY * BATCH], y[: EVERY * BATCH], batch_size=BATCH, epochs=epochs, verbose=0, shuffle=False,
        callbacks=[
            keras.callbacks.ModelCheckpoint(os.path.join(root, "ckpt", "model.{epoch:02d}.weights.h5"), save_weights_only=True),
            keras.callbacks.TensorBoard(os.path.join(root, "logs"), histogram_freq=1),
        ],
    )


def keras_archive(root: str) -> None:
    """Plain ``model.fit`` saving whole ``.keras`` archives (a zip holding ``model.weights.h5``).

    A whole model must be serialisable, so this one has no second optimizer: its
    story is the frozen layer among moving ones.
    """
    import keras

    model = _keras_model()
    model.compile(optimizer=keras.optimizers.Adam(LR), loss="mse")
    x, y = data()
    model.fit(
        x[: EVERY * BATCH], y[: EVERY * BATCH], batch_size=BATCH, epochs=3, verbose=0, shuffle=False,
        callbacks=[
            keras.callbacks.ModelCheckpoint(os.path.join(root, "ckpt", "model.{epoch:02d}.keras")),
            keras.callbacks.TensorBoard(os.path.join(root, "logs")),
        ],
    )


FRAMEWORKS = {
    "lightning": lightning, "hf": hf, "hf_sharded": hf_sharded, "torch": torch_plain,
    "tf2": tf2, "tf2_counter": tf2_counter, "tf1": tf1, "keras": keras_fit, "keras_archive": keras_archive,
}

if __name__ == "__main__":
    name, root = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        STEPS = int(sys.argv[3])
    os.makedirs(root, exist_ok=True)
    FRAMEWORKS[name](root)
