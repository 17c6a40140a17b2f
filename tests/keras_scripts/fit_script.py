"""Subprocess entry point for tests/test_keras.py: a tiny ``fit()`` with the Keras backend
named by ``KERAS_BACKEND``, logged by CometCallback to the server in ``COMET_URL_OVERRIDE``.

Usage: ``python fit_script.py OUT.json STEPS_PER_EXECUTION LOG_BATCH_EVERY``. Records every
attempt to import TensorFlow (even one that would fail) and writes what the test compares
with the server to OUT.json.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
import traceback

TF_ATTEMPTS: list[dict[str, object]] = []


class _RecordTensorFlow(importlib.abc.MetaPathFinder):
    """Records every lookup of ``tensorflow*`` (import or ``find_spec``) with the files on
    the stack at that moment; finds nothing itself."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] in ("tensorflow", "tf_keras"):
            files = [f.filename for f in traceback.extract_stack() if "importlib" not in f.filename]
            TF_ATTEMPTS.append({"name": name, "stack": files})
        return None


sys.meta_path.insert(0, _RecordTensorFlow())


def main() -> None:
    out, spe, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    import keras
    import numpy as np
    from comet_callbacks.integrations.keras import CometCallback

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", steps_per_execution=spe)
    cb = CometCallback(log_batch_every=every, log_model=False)

    class StepCount(keras.callbacks.Callback):
        """Keras' own count: the optimizer steps really taken at each batch-end call (as in
        Keras' steps_per_execution trainer tests)."""

        def __init__(self) -> None:
            super().__init__()
            self.iterations: list[int] = []

        def on_train_batch_end(self, batch: int, logs: object = None) -> None:
            it = self.model.optimizer.iterations
            self.iterations.append(int(keras.ops.convert_to_numpy(it)))

    counter = StepCount()
    history = model.fit(x, y, epochs=2, batch_size=8, callbacks=[cb, counter], verbose=0)
    result = {
        "backend": keras.backend.backend(),
        "key": cb.experiment.key,
        "ended": cb.experiment.ended,
        "history": history.history,
        "epochs": history.epoch,
        "batch_end_iterations": counter.iterations,
        "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "tf_attempts": TF_ATTEMPTS,
        "tf_modules": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
    }
    with open(out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    main()
