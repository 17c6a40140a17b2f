"""Hugging Face Trainer quick start: one callback adds Comet tracking.

    python examples/transformers_quickstart.py                 # ~20 s on a CPU
    python examples/transformers_quickstart.py --max-steps 4   # shorter

Online when ``COMET_API_KEY`` (or ``COMET_URL_OVERRIDE``, e.g. the local server started with
``comet-callbacks server``) is set; otherwise the run is logged OFFLINE to disk and the
script prints the ``comet-callbacks upload`` command that sends it later.
A tiny BERT is built from a config and the data is made here in code: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from comet_callbacks.integrations.transformers import CometCallback
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
)

WORDS = [f"w{i}" for i in range(98)]


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over a made-up vocabulary (saved with the model)."""
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]")


class Sentences(torch.utils.data.Dataset):
    """Random 8-word sentences; the label says whether the first word is in the upper half."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, len(WORDS), (n, 8), generator=g)
        texts = [" ".join(WORDS[i] for i in row) for row in ids.tolist()]
        self.enc = tokenizer(texts, padding=True)
        self.labels = (ids[:, 0] >= len(WORDS) // 2).long().tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, object]:
        return {k: v[i] for k, v in self.enc.items()} | {"labels": self.labels[i]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--project", default="transformers-quickstart")
    parser.add_argument("--output-dir", default=None, help="default: a temporary folder")
    opts = parser.parse_args()
    torch.manual_seed(0)

    tokenizer = make_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=opts.output_dir or tmp,
            max_steps=opts.max_steps,
            per_device_train_batch_size=16,
            learning_rate=1e-3,
            logging_steps=max(1, opts.max_steps // 10),
            eval_strategy="steps",
            eval_steps=max(1, opts.max_steps // 3),
            save_strategy="no",
            report_to="none",  # only Comet, through the callback below
            use_cpu=True,
            disable_tqdm=True,
        )
        comet = CometCallback(project_name=opts.project, tags=["quickstart"])
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=Sentences(tokenizer, 512, seed=1),
            eval_dataset=Sentences(tokenizer, 128, seed=2),
            processing_class=tokenizer,
            callbacks=[comet],  # <- the one line
        )
        trainer.train()  # params, metrics, final model + tokenizer; the experiment ends
        metrics = trainer.evaluate()  # logged too: the experiment is continued, then ended
    print(f"eval loss {metrics['eval_loss']:.4f}; experiment key {comet.experiment_key}")


if __name__ == "__main__":
    main()
