"""The training loss read only where it counts: decoder to hidden states, then the LM head and the
cross-entropy on the positions whose label is a target token (answer tokens in Q/A examples).

The full-vocabulary logits of every prompt position are never built: for a RAFT example of ~700
tokens with a ~10-token answer, that is most of the LM head's work and memory. Imports torch at
module level: import it inside functions (strategies.lora.loop does).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100  # same value as strategies.lora.batches.IGNORE (kept torch-free there)

# Config attributes that change the logits after the LM head; such models go the plain way.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale")


def causal_lm(model: Any) -> Any:
    """The transformers causal LM inside `model` (a peft wrapper or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class AnswerLoss(nn.Module):
    """`forward(input_ids, labels, attention_mask)` -> (summed loss, number of loss tokens).

    The sum over label tokens (shifted, as causal LMs predict the next token), not the mean, so
    micro-batches add up and the caller normalises by the whole optimisation batch. Wraps the
    (peft) model as a submodule, so DDP sees its trainable parameters when this is prepared.
    """

    def __init__(self, model: Any):
        super().__init__()
        self.model = model
        lm = causal_lm(model)
        config = getattr(lm, "config", None)
        # Kept outside the module tree (a tuple): they are parts of `self.model` already.
        self._parts = (lm.get_decoder(), lm.get_output_embeddings())
        self.gathered = all(p is not None for p in self._parts) and not any(
            getattr(config, k, None) for k in _LOGIT_POSTPROCESSING
        )

    def forward(self, input_ids, labels, attention_mask):
        logits, target, keep = self._answer_logits(input_ids, labels, attention_mask)
        loss = F.cross_entropy(logits.float(), target, reduction="sum")
        return loss, keep.sum()

    def _answer_logits(self, input_ids, labels, attention_mask):
        """(logits at the label positions, their target tokens, the [rows, positions] mask of
        those positions), shifted as causal LMs predict the next token."""
        target = labels[:, 1:]
        keep = target != IGNORE
        if self.gathered:
            decoder, head = self._parts
            # use_cache=False: a KV cache would only copy every layer's keys and values again
            hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
            logits = head(hidden[:, :-1][keep])
        else:  # logits post-processed by the model: take its full logits, then gather
            logits = self.model(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=False
            ).logits
            logits = logits[:, :-1][keep]
        return logits, target[keep], keep

    def per_row(self, input_ids, labels, attention_mask):
        """(summed loss, loss tokens) of each row: the paired comparison of two checkpoints
        on the same validation examples needs each example's loss, not only their sum."""
        logits, target, keep = self._answer_logits(input_ids, labels, attention_mask)
        tokens = F.cross_entropy(logits.float(), target, reduction="none")
        rows = torch.arange(keep.shape[0], device=keep.device)[:, None].expand_as(keep)[keep]
        sums = torch.zeros(keep.shape[0], dtype=torch.float64, device=tokens.device)
        return sums.index_add_(0, rows, tokens.double()), keep.sum(dim=1)


@torch.no_grad()
def row_losses(loss_fn: AnswerLoss, batches, device) -> tuple[list[float], list[int]]:
    """Each example's summed loss and loss tokens (float64), batch after batch, in order."""
    sums: list[float] = []
    counts: list[int] = []
    for ids, labels, mask in batches:
        loss, n = loss_fn.per_row(ids.to(device), labels.to(device), mask.to(device))
        sums += loss.tolist()
        counts += n.tolist()
    return sums, counts
