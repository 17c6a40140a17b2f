"""Training whose model raises in its 3rd forward pass (a real crash inside ``train()``).

Run by tests/test_transformers.py with COMET_* pointing at the test server; the uncaught
exception must end the experiment as failed while the traceback and exit code stay Python's.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hf_tiny as tiny  # noqa: E402
from comet_callbacks.integrations.transformers import CometCallback  # noqa: E402
from transformers import Trainer  # noqa: E402


class Boom(RuntimeError):
    """The failure the test looks for on stderr."""


def failing_model(fail_at: int) -> Any:
    """The tiny model, whose forward raises on call number ``fail_at``."""
    model = tiny.model()
    forward = model.forward
    calls = [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == fail_at:
            raise Boom(f"forward failed at call {fail_at}")
        return forward(*args, **kwargs)

    wrapped.__signature__ = inspect.signature(forward)  # type: ignore[attr-defined]
    model.forward = wrapped  # the Trainer keeps the batch keys this signature names
    return model


def main() -> None:
    torch.set_num_threads(1)
    out = sys.argv[1]
    trainer = Trainer(
        model=failing_model(3),
        args=tiny.args(out),
        train_dataset=tiny.Data(32),
        processing_class=tiny.tokenizer(),
        callbacks=[CometCallback(project_name=os.environ.get("HF_TEST_PROJECT", "hf"))],
    )
    trainer.train()


if __name__ == "__main__":
    main()
