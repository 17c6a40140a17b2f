"""Keras 3 quick start: a tiny classifier trained with ``CometCallback``.

    KERAS_BACKEND=torch python examples/keras_quickstart.py --epochs 3

Online when ``COMET_API_KEY`` (and, for a local server, ``COMET_URL_OVERRIDE``) is set;
otherwise the run is kept offline on disk and the script prints how to upload it. Set
``COMET_MODEL_REGISTRY_NAME`` to also register the trained model. Runs in seconds on CPU:
the data is generated here, nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from comet_callbacks.integrations.keras import CometCallback  # noqa: E402


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy interleaved spirals-ish blobs: label = sign of a smooth function."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype("float32")
    y = (np.sin(2 * x[:, 0]) + x[:, 1] > 0).astype("int32")
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--log-batch-every", type=int, default=None)
    parser.add_argument("--project", default="keras-quickstart")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    x_train, y_train = make_data(512)
    x_test, y_test = make_data(256, seed=1)
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    comet = CometCallback(
        project_name=args.project,
        log_batch_every=args.log_batch_every,
        tags=["keras", keras.backend.backend()],
    )
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=0.2,
        callbacks=[comet],
        verbose=2,
    )
    # evaluate() with the same callback continues the experiment: eval_loss, eval_accuracy
    results = model.evaluate(x_test, y_test, callbacks=[comet], verbose=0, return_dict=True)
    print("test:", {k: round(float(v), 4) for k, v in results.items()})

    exp = comet.experiment
    if exp is not None:
        print("experiment:", exp.url or f"offline run in {exp.offline_path}")


if __name__ == "__main__":
    main()
