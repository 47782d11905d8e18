"""LoRA fine-tuning as a sub-package, one job per module:

- `strategy`: the registered `lora` strategy (prepare = train or load an adapter, answer);
- `settings`: its config, with the training loop's section (`TrainingSettings`);
- `data`: training examples (Q/A with the loss on the answer, chunks, RAFT) and validation split;
- `corpus_facts`: Q/A pairs from every corpus fact (`data: pairs+corpus`);
- `loop`: the training loop (accelerate); `batches`: length-grouped micro-batches under a memory
  budget; `answer_loss`: the loss on answer tokens only; `cpu_swaps`: CPU speed-ups;
- `deploy`: adapter zips, merged models, sizes; `train`: `python -m strategies.lora.train`.

Importing the package registers the strategy.
"""

from strategies.lora.batches import IGNORE
from strategies.lora.settings import LoraStrategyConfig, TrainingSettings
from strategies.lora.strategy import LoraStrategy

__all__ = ["IGNORE", "LoraStrategy", "LoraStrategyConfig", "TrainingSettings"]
