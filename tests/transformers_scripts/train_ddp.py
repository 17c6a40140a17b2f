"""Tiny DDP training for ``torch.distributed.run --nproc_per_node 2`` on CPU (gloo).

Each rank writes ``rank<N>.json`` into the output folder: what its callback saw, and (rank 0)
the Trainer's ``log_history``, for tests/test_transformers.py to compare with the server.
"""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hf_tiny as tiny  # noqa: E402
from comet_callbacks.integrations.transformers import CometCallback  # noqa: E402
from transformers import Trainer  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    out = sys.argv[1]
    cb = CometCallback(project_name=os.environ.get("HF_TEST_PROJECT", "hf"))
    trainer = Trainer(
        model=tiny.model(),
        args=tiny.args(out, max_steps=8, ddp_backend="gloo"),
        train_dataset=tiny.Data(32),
        processing_class=tiny.tokenizer(),
        callbacks=[cb],
    )
    trainer.train()
    rank = int(os.environ["RANK"])
    report = {
        "rank": rank,
        "world_size": trainer.args.world_size,
        "key": cb.experiment_key,
        "log_history": trainer.state.log_history,
    }
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh)


if __name__ == "__main__":
    main()
