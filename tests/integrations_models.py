"""The tiny models and data the integration tests train (imported by the tests and their subprocesses).

One network, three fates: ``fast`` and ``out`` train at the learning rate,
``slow`` at 1e-5 of it (its own optimizer parameter group), ``frozen`` not
at all (``requires_grad_(False)``, in no group).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

LR = 1e-2
SLOW = 1e-5  # the slow layer's learning rate, relative to LR
N, DIM = 64, 8


class Net(torch.nn.Module):
    """8 -> fast(16) -> frozen(16) -> slow(16) -> out(1), tanh between; returns a dict with the loss, for HF."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fast = torch.nn.Linear(DIM, 16)
        self.frozen = torch.nn.Linear(16, 16)
        self.slow = torch.nn.Linear(16, 16)
        self.out = torch.nn.Linear(16, 1)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.slow(torch.tanh(self.frozen(torch.tanh(self.fast(x))))))
        prediction = self.out(h)
        loss = None if labels is None else torch.nn.functional.mse_loss(prediction, labels)
        return {"loss": loss, "logits": prediction}


def optimizer(net: Net) -> torch.optim.Optimizer:
    """Adam (an update of about the learning rate per step, whatever the gradient's scale) in two groups."""
    return torch.optim.Adam(
        [
            {"params": [*net.fast.parameters(), *net.out.parameters()], "lr": LR},
            {"params": net.slow.parameters(), "lr": LR * SLOW},
        ]
    )


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """N random inputs and a smooth target of them."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N, DIM, generator=generator)
    return x, torch.sin(x.sum(dim=1, keepdim=True))


def examples(seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """:func:`data` as the Hugging Face Trainer's default collator takes it."""
    x, y = data(seed)
    return [{"x": xi, "labels": yi} for xi, yi in zip(x, y)]


def loader(batch_size: int = 8) -> torch.utils.data.DataLoader:
    """:func:`data` in a fixed order, for Lightning."""
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data()), batch_size=batch_size)


class TrainsNet:
    """The part of a LightningModule that trains :class:`Net`, for either Lightning package's base class.

    Its parameters are named ``net.fast.weight``, ...
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = Net()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.net(x, y)["loss"]
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return optimizer(self.net)


class LitNet(TrainsNet, pl.LightningModule):
    """:class:`TrainsNet` on ``lightning.pytorch``."""
