"""Lightning quick start: one line adds Comet tracking to a Trainer.

    python examples/lightning_quickstart.py                 # ~10 s on a CPU
    python examples/lightning_quickstart.py --max-steps 5   # shorter

Online when ``COMET_API_KEY`` (or ``COMET_URL_OVERRIDE``, e.g. the local server started with
``comet-callbacks server``) is set; otherwise the run is logged OFFLINE to disk and the
script prints the ``comet-callbacks upload`` command that sends it later.
The data is made here in code: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from comet_callbacks.integrations.lightning import CometCallback, pl
from torch.utils.data import DataLoader, TensorDataset


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()  # logged as Comet parameters
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)  # -> Comet metrics
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def data(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x * torch.linspace(-1, 1, 8)).sum(dim=1, keepdim=True) + 0.1 * torch.randn(
        n, 1, generator=g
    )
    return DataLoader(TensorDataset(x, y), batch_size=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--project", default="lightning-quickstart")
    args = parser.parse_args()

    pl.seed_everything(42)
    with tempfile.TemporaryDirectory(prefix="lightning-quickstart-") as checkpoints:
        trainer = pl.Trainer(
            max_epochs=args.max_epochs,
            max_steps=args.max_steps,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_progress_bar=False,
            log_every_n_steps=5,
            default_root_dir=checkpoints,  # removed at the end: Comet keeps the model
            # The one line: metrics, hyperparameters, trainer/optimizer config, graph, the best
            # checkpoint as a model, and the run's status all go to Comet.
            callbacks=[CometCallback(project_name=args.project)],
        )
        trainer.fit(Regressor(), data(1024, seed=0), data(256, seed=1))
    cb = next(c for c in trainer.callbacks if isinstance(c, CometCallback))
    exp = cb.experiment
    if exp is not None:
        print(f"Comet experiment {cb.experiment_key}:", exp.url or f"offline in {exp.offline_path}")


if __name__ == "__main__":
    main()
