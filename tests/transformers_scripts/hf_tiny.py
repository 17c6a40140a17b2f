"""Tiny BERT classifier, tokenizer and data built in code (no downloads), shared by the
transformers tests and their subprocess scripts."""

from __future__ import annotations

from typing import Any

import torch

SEQ = 8


def tokenizer() -> Any:
    """A word-level fast tokenizer over ``w0``..``w97`` plus ``[PAD]``/``[UNK]``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(98)}}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]")


def model(seed: int = 0) -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=2,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(cfg)


class Data(torch.utils.data.Dataset):
    """``n`` random sequences; the label says whether the first token id is above 50."""

    def __init__(self, n: int, seed: int = 1) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(2, 100, (n, SEQ), generator=g)
        self.y = (self.x[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.x[i],
            "attention_mask": torch.ones(SEQ, dtype=torch.long),
            "labels": self.y[i],
        }


def args(output_dir: str, **kw: Any) -> Any:
    """TrainingArguments for a quick CPU run with no other tracker."""
    from transformers import TrainingArguments

    base: dict[str, Any] = dict(
        output_dir=output_dir,
        max_steps=6,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    base.update(kw)
    return TrainingArguments(**base)
