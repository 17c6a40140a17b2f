"""A tiny LightningModule and data made in code, shared by the Lightning tests and scripts."""

from __future__ import annotations

import torch
from comet_callbacks.integrations.lightning import pl
from torch.utils.data import DataLoader, TensorDataset


class TinyModel(pl.LightningModule):
    """Linear regression; logs train/val/test losses. ``fail_at_step`` raises in training."""

    def __init__(
        self, lr: float = 0.05, hidden: int = 4, opt: dict | None = None, fail_at_step: int = -1
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )
        self.frozen = torch.nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def training_step(self, batch, batch_idx):  # noqa: ANN001
        if self.global_step == self.hparams.fail_at_step:
            raise ValueError("boom in training_step")
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):  # noqa: ANN001
        self.log("val_loss", self._loss(batch), sync_dist=True)

    def test_step(self, batch, batch_idx):  # noqa: ANN001
        self.log("test_loss", self._loss(batch))

    def configure_optimizers(self):  # noqa: ANN201
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def loader(n: int = 32, batch_size: int = 8, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x.sum(dim=1, keepdim=True)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


class RecordingLogger(pl.loggers.Logger):
    """Records every ``log_metrics`` call Lightning makes: the reference the server is
    compared with."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[dict, int | None]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:  # noqa: ANN001
        pass

    def log_metrics(self, metrics, step=None) -> None:  # noqa: ANN001
        self.calls.append(({k: float(v) for k, v in metrics.items()}, step))

    def points(self, name: str) -> list[tuple[float, int | None, int | None]]:
        """``(value, step, epoch)`` of each point of ``name``, in order."""
        return [
            (m[name], step, int(m["epoch"]) if "epoch" in m else None)
            for m, step in self.calls
            if name in m
        ]
