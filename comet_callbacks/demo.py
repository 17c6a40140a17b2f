"""The main job: ``python -m comet_callbacks.demo`` (what ``bash scripts/main.sh`` runs).

Starts the embedded local Comet-compatible server (SQLite, loopback, ephemeral port), trains
a small Lightning model with ``CometCallback`` against it — best checkpoint uploaded and
registered in the model registry — and prints what the server now holds: the experiment
link, the metric series, parameters, the registered model version and the final status.
It ends by saying how to open the run in the web UI; with ``--serve`` the server stays up and
a one-time login link opens the run's page in a browser.

Everything it writes stays in one visible folder (``./comet-demo`` by default: the server's
database and assets, the checkpoint, any offline log). Needs the ``lightning`` and ``server``
extras. No Comet account, no network.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading


def _train(max_epochs: int, registry_name: str, root_dir: str) -> str:
    """Train a tiny regression model; returns the experiment key."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from comet_callbacks.integrations.lightning import CometCallback

    torch.manual_seed(0)

    class Regressor(L.LightningModule):
        def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            x, y = batch
            loss = torch.nn.functional.mse_loss(self(x), y)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 2)}

    x = torch.randn(512, 8)
    y = (x @ torch.linspace(-1, 1, 8)).unsqueeze(1) + 0.1 * torch.randn(512, 1)
    ds = torch.utils.data.TensorDataset(x, y)
    train, val = torch.utils.data.random_split(ds, [448, 64])
    callback = CometCallback(
        project_name="demo", experiment_name="demo-regressor", registry_name=registry_name
    )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        callbacks=[callback, ModelCheckpoint(monitor="val_loss", save_top_k=1)],
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=5,
        logger=False,  # no lightning_logs/ CSV folder: the run is in the Comet server
        default_root_dir=root_dir,
    )
    trainer.fit(
        Regressor(),
        torch.utils.data.DataLoader(train, batch_size=32, shuffle=True),
        torch.utils.data.DataLoader(val, batch_size=64),
    )
    key = callback.experiment.key if callback.experiment is not None else None
    if key is None:
        raise SystemExit("the demo run created no experiment")
    return key


def _report(reader, root: str, key: str, workspace: str, registry_name: str) -> None:  # type: ignore[no-untyped-def]
    meta = reader.metadata(key)
    print("\n=== What the local Comet server now holds ===")
    print(f"experiment: {meta['experimentName'] or key}")
    print(f"link:       {root}/{meta['workspaceName']}/{meta['projectName']}/{key}")
    status = reader.others(key).get("status")
    print(f"status:     {status} (running: {meta['running']}, crashed: {meta['hasCrashed']})")
    print("\nmetric series (user metrics):")
    print(f"  {'name':<24}{'points':>8}{'first':>12}{'last':>12}{'min':>12}")
    for summary in sorted(reader.metric_summary(key), key=lambda s: s["name"]):
        name = summary["name"]
        if name.startswith("sys."):
            continue
        points = reader.metrics(key, name)
        first = points[0]["metricValue"] if points else "-"
        print(
            f"  {name:<24}{len(points):>8}{_fmt(first):>12}"
            f"{_fmt(summary['valueCurrent']):>12}{_fmt(summary['valueMin']):>12}"
        )
    system = [s["name"] for s in reader.metric_summary(key) if s["name"].startswith("sys.")]
    print(f"  + {len(system)} system metric series ({', '.join(sorted(system)[:4])}, ...)")
    params = reader.parameters(key)
    print(f"\nparameters ({len(params)}):")
    for name in sorted(params)[:14]:
        print(f"  {name} = {params[name]}")
    if len(params) > 14:
        print(f"  ... and {len(params) - 14} more")
    models = reader.models(key)
    print(f"\nexperiment models: {[m['modelName'] for m in models]}")
    try:
        details = reader.registry_details(workspace, registry_name)
        versions = [v["version"] for v in details["versions"]]
        print(f"model registry:    {registry_name} versions {versions}")
    except Exception as exc:  # noqa: BLE001 - report, don't crash the demo
        print(f"model registry:    nothing registered ({exc})")
    files = [a["fileName"] for a in reader.assets(key)]
    print(f"assets:            {len(files)} files, e.g. {files[:3]}")
    print(f"code captured:     {len(reader.code(key) or '')} characters of the entry script")


def _fmt(value: str | None) -> str:
    try:
        return f"{float(value):.4g}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m comet_callbacks.demo", description=__doc__)
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument(
        "--data-dir",
        default="comet-demo",
        help="folder for everything the demo writes (default: ./comet-demo)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the server up at the end and print a login link to the run's web page",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port of the server (default: any free one)"
    )
    args = parser.parse_args(argv)

    from comet_callbacks.server.embedded import start_server
    from comet_callbacks.server.reader import Reader

    data = args.data_dir
    os.makedirs(data, exist_ok=True)
    registry_name = "demo-regressor"
    with start_server(
        db_path=os.path.join(data, "comet.sqlite"),
        assets_dir=os.path.join(data, "assets"),
        port=args.port,
    ) as server:
        print(f"local Comet server at {server.url} (data in {data})")
        os.environ["COMET_URL_OVERRIDE"] = server.url
        os.environ["COMET_API_KEY"] = server.api_key
        os.environ.setdefault("COMET_OFFLINE_DIRECTORY", os.path.join(data, "offline"))
        key = _train(args.max_epochs, registry_name, os.path.join(data, "lightning"))
        reader = Reader(server.url, server.api_key)
        _report(reader, server.url, key, server.workspace, registry_name)
        meta = reader.metadata(key)
        page = f"/{meta['workspaceName']}/{meta['projectName']}/{key}"
        reader.close()
        if args.serve:
            print("\n=== Web UI ===")
            print("Open the run in a browser (the login link works once):")
            print(f"  {server.login_url(next_path=page)}")
            print(
                f"Later: comet-callbacks server --data-dir {data} serves this data again "
                "and prints a new link."
            )
            print("Serving until Ctrl-C.", flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                print("stopped.")
        else:
            print("\n=== See it in the web UI ===")
            print(
                "  python -m comet_callbacks.demo --serve        (trains again, keeps the server up)"
            )
            print(f"or serve this data: comet-callbacks server --data-dir {data}")
            print(f"  then open the login link it prints and go to {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
