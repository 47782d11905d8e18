"""The in-process engine (transformers) and model loading, shared by every strategy of a run:
the generator and the embedder.

Generators and embedders are loaded once per (name, device, cache) and handed out again to
whoever asks (haystack's embedder backend factory): four strategies share one model in memory.
Names resolve (core.engines.model_files) in this order: a bundled alias (`BUNDLED_GENERATORS`,
`BUNDLED_EMBEDDERS`), a local folder, then a Hugging Face id (which needs a hub; everything
bundled works offline).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from core.config import ModelConfig

# Generation, Generator and load_generator are the contract's (core.engines.base); importable from
# here too, where callers have always found them.
from core.engines.base import Generation, Generator, load_generator, register_engine
from core.engines.model_files import (
    BUNDLED_EMBEDDERS,
    BUNDLED_GENERATORS,
    ModelLoadError,
    make_bundled_apart,
    quiet_transformers,
    resolve_name,
)
from core.usage import add_tokens

_LOCK = threading.RLock()
_GENERATORS: dict[tuple, TransformersGenerator] = {}
_EMBEDDERS: dict[tuple, Embedder] = {}
_TOKENIZERS: dict[tuple, Any] = {}
_RERANKERS: dict[tuple, Reranker] = {}
GENERATE_TOKEN_BUDGET = 8192  # default TransformersGenerator.generate_token_budget


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no GPU is visible")
    return device


def torch_dtype(device: str):
    """bfloat16 on CUDA; float32 on the CPU, where bfloat16 matmuls are ~100x slower."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


# ---------------------------------------------------------------------------------------------
# Generator


@register_engine("transformers")
class TransformersGenerator:
    """The in-process engine: a causal LM with its tokenizer, chat-templated prompts in, greedy
    completions out (the `Generator` contract of core.engines.base).

    LoRA adapters attach to the same weights (`attach_adapter`); `generate(adapter=None)` always
    runs the plain base model, so strategies that share it see no trace of fine-tuning.
    """

    in_process: ClassVar[bool] = True

    def __init__(self, name: str, model: Any, tokenizer: Any, device: str):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.peft_model: Any = None  # set once the first adapter is attached
        self._adapters: set[str] = set()
        # Padded tokens (prompt + answer) one generation sub-batch may hold: bounds the KV cache
        # and keeps long RAG prompts from padding short ones.
        self.generate_token_budget = GENERATE_TOKEN_BUDGET
        self.lock = threading.RLock()  # one generation or training step at a time

    @classmethod
    def load(cls, config: ModelConfig) -> TransformersGenerator:
        """The shared generator for `config.generator` on `config.device` (loaded once)."""
        return _shared(_GENERATORS, config.generator, config, _load_generator)

    def parameter_count(self) -> int | None:
        """Weights of the base model (adapters excluded)."""
        return sum(p.numel() for p in self.model.parameters())

    def server_details(self) -> dict[str, Any] | None:
        """None: no server answers for this engine."""
        return None

    def adapter_problem(self) -> str | None:
        """None: adapters train and answer on the same in-process weights."""
        return None

    # --- prompts -----------------------------------------------------------------------------
    def render(self, messages: list[dict[str, str]], answer: str | None = None) -> str:
        """Chat-template `messages` into a prompt (ending where the assistant speaks).

        With `answer`, the assistant turn is included and closed, as in training data.
        """
        if answer is None:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return self.tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": answer}], tokenize=False
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of `text`, special tokens excluded."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # --- adapters ----------------------------------------------------------------------------
    def attach_adapter(self, name: str, peft_config: Any) -> Any:
        """Add a fresh trainable LoRA adapter called `name`; returns the peft model."""
        from peft import get_peft_model

        with self.lock:
            if self.peft_model is None:
                with _peft_wrapping():
                    self.peft_model = get_peft_model(self.model, peft_config, adapter_name=name)
            else:
                if name in self._adapters:
                    self.peft_model.delete_adapter(name)
                    self._adapters.discard(name)
                self.peft_model.add_adapter(name, peft_config)
            self._adapters.add(name)
            self.peft_model.set_adapter(name)
            return self.peft_model

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load a saved peft adapter under `name` (not trainable)."""
        from peft import PeftModel

        with self.lock:
            if self.peft_model is None:
                with _peft_wrapping():
                    self.peft_model = PeftModel.from_pretrained(
                        self.model, str(path), adapter_name=name
                    )
            else:
                if name in self._adapters:
                    self.peft_model.delete_adapter(name)
                self.peft_model.load_adapter(str(path), adapter_name=name)
            self._adapters.add(name)

    def detach_adapter(self, name: str) -> None:
        """Remove adapter `name`, freeing its weights; the last one restores the plain model."""
        with self.lock:
            if self.peft_model is None or name not in self._adapters:
                return
            self._adapters.discard(name)
            if self._adapters:
                self.peft_model.delete_adapter(name)
            else:
                self.model = self.peft_model.unload()  # strips LoRA layers from the base
                self.peft_model = None

    @contextlib.contextmanager
    def using(self, adapter: str | None) -> Iterator[Any]:
        """The model to run, with `adapter` active, or the bare base model when None."""
        with self.lock:
            if self.peft_model is None:
                if adapter is not None:
                    raise KeyError(f"no adapter {adapter!r} attached")
                yield self.model
            elif adapter is None:
                with self.peft_model.disable_adapter():
                    yield self.peft_model
            else:
                if adapter not in self._adapters:
                    raise KeyError(f"no adapter {adapter!r} attached")
                self.peft_model.set_adapter(adapter)
                yield self.peft_model

    # --- generation --------------------------------------------------------------------------
    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        max_new_tokens: int = 32,
        adapter: str | None = None,
    ) -> list[Generation]:
        """Greedy completions for a batch of chat conversations, in the order given.

        Prompts run in length-sorted sub-batches of at most `generate_token_budget` padded
        tokens (prompt + new tokens), so prompts of very different lengths do not pad each other.
        """
        if not conversations:
            return []
        tok = self.tokenizer
        prompts = [self.render(m) for m in conversations]
        ids = tok(prompts, add_special_tokens=False)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        results: list[Generation | None] = [None] * len(ids)
        start = 0
        while start < len(order):
            end = start + 1  # sorted ascending, so the newest member is the longest
            while (
                end < len(order)
                and (end - start + 1) * (len(ids[order[end]]) + max_new_tokens)
                <= self.generate_token_budget
            ):
                end += 1
            part = order[start:end]
            for i, gen in zip(
                part, self._generate([ids[i] for i in part], max_new_tokens, adapter), strict=True
            ):
                results[i] = gen
            start = end
        add_tokens(sum(g.prompt_tokens + g.output_tokens for g in results))  # worker budgets
        return results  # type: ignore[return-value]

    def _generate(
        self, ids: list[list[int]], max_new_tokens: int, adapter: str | None
    ) -> list[Generation]:
        """Greedy completions for tokenised prompts, left-padded together."""
        import torch

        tok = self.tokenizer
        enc = tok.pad({"input_ids": ids}, return_tensors="pt", padding=True)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with self.using(adapter) as model, torch.inference_mode():
            model.eval()
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=self._stop_ids(),
            )
        new = out[:, enc["input_ids"].shape[1] :]
        results = []
        stops = set(self._stop_ids())
        for row, prompt in zip(new.tolist(), ids, strict=True):
            kept = []
            for t in row:
                if t in stops or t == tok.pad_token_id:
                    break
                kept.append(t)
            n_out = min(len(row), len(kept) + 1)  # the stop token was generated too
            text = tok.decode(kept, skip_special_tokens=True)
            # Every generated slot used and none a stop: the limit, not the model, ended it.
            cut = len(kept) == len(row) == max_new_tokens
            results.append(Generation(text, len(prompt), int(n_out), truncated=cut))
        return results

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(end, int) and end != self.tokenizer.unk_token_id:
            ids.add(end)
        return [i for i in ids if i is not None]


@contextlib.contextmanager
def _peft_wrapping() -> Iterator[None]:
    """Around peft wrapping a model: peft reads a transformers property deprecated in v5
    (`is_gradient_checkpointing`) there; the warning is not ours to fix, nor the user's."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield


def load_tokenizer(config: ModelConfig) -> Any:
    """The generator's tokenizer alone (for chunking previews): no model weights are loaded.

    None for a server engine configured without a local model (chunking then counts words).
    """
    if not config.generator:
        return None
    return _shared(_TOKENIZERS, config.generator, config, _load_tokenizer)


def prepare_tokenizer_files(config: ModelConfig) -> None:
    """Convert a bundled generator into its cache folder once, if never done, in a process of
    its own (it loads the model), so that a process that may not write large files (the
    bounded corpus child) can load its tokenizer. Once done, a check that the folder exists.
    Raises ModelLoadError when the conversion fails."""
    if config.generator:
        make_bundled_apart(config.generator, Path(config.cache_dir))


def _load_tokenizer(name: str, device: str, cache_dir: Path) -> Any:
    from transformers import AutoTokenizer

    loaded = _GENERATORS.get((name, device, str(cache_dir)))
    if loaded is not None:  # the generator is in memory already: its tokenizer is the same
        return loaded.tokenizer
    quiet_transformers()
    try:
        return AutoTokenizer.from_pretrained(resolve_name(name, BUNDLED_GENERATORS, cache_dir))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load tokenizer of {name!r}: {e}") from e


def _shared(cache: dict[tuple, Any], name: str, config: ModelConfig, loader: Callable) -> Any:
    """One loaded model per (name, device, cache folder), made by `loader` on first use."""
    device = resolve_device(config.device)
    key = (name, device, config.cache_dir)
    with _LOCK:
        if key not in cache:
            cache[key] = loader(name, device, Path(config.cache_dir))
        return cache[key]


def generator_path(config: ModelConfig) -> str:
    """The local folder (a bundled alias converted on first use) or hub id the generator
    `config.generator` loads from."""
    return resolve_name(config.generator, BUNDLED_GENERATORS, Path(config.cache_dir))


def _load_generator(name: str, device: str, cache_dir: Path) -> TransformersGenerator:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()

    path = resolve_name(name, BUNDLED_GENERATORS, cache_dir)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        # SDPA, never the eager path: eager materialises every attention matrix in training.
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype(device), attn_implementation="sdpa"
        )
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load generator {name!r}: {e}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # decoder-only batched generation continues from the right edge
    if not getattr(tok, "chat_template", None):
        raise ModelLoadError(f"generator {name!r} has no chat template; use an instruct model")
    model.to(device)
    model.eval()
    return TransformersGenerator(name, model, tok, device)


# ---------------------------------------------------------------------------------------------
# Embedder


class Embedder:
    """Sentence embeddings, L2-normalised float32, so inner product is cosine similarity."""

    def __init__(self, name: str, model: Any, device: str):
        self.name = name
        self.model = model
        self.device = device
        self.dim = int(model.get_embedding_dimension())
        self.lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 32):
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self.lock:
            vecs = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vecs, dtype=np.float32)


def load_embedder(config: ModelConfig) -> Embedder:
    """The shared embedder for `config` (loaded on first use)."""
    return _shared(_EMBEDDERS, config.embedder, config, _load_embedder)


def _load_embedder(name: str, device: str, cache_dir: Path) -> Embedder:
    from sentence_transformers import SentenceTransformer

    quiet_transformers()
    path = resolve_name(name, BUNDLED_EMBEDDERS, cache_dir)
    try:
        model = SentenceTransformer(path, device=device)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load embedder {name!r}: {e}") from e
    return Embedder(name, model, device)


class Reranker:
    """A cross-encoder that scores (question, passage) pairs jointly: slower than comparing
    embeddings, and often better at ordering a short list of candidates."""

    def __init__(self, name: str, model: Any):
        self.name = name
        self.model = model
        self.lock = threading.Lock()

    def scores(self, question: str, passages: list[str]):
        """One relevance score per passage (higher is more relevant), as a float32 array."""
        import numpy as np

        if not passages:
            return np.zeros(0, dtype=np.float32)
        with self.lock:
            out = self.model.predict(
                [(question, p) for p in passages], show_progress_bar=False, convert_to_numpy=True
            )
        return np.asarray(out, dtype=np.float32).reshape(len(passages), -1)[:, 0]


def load_reranker(config: ModelConfig, name: str) -> Reranker:
    """The shared cross-encoder `name` (a local folder or a Hugging Face id), loaded once."""
    return _shared(_RERANKERS, name, config, _load_reranker)


def _load_reranker(name: str, device: str, cache_dir: Path) -> Reranker:
    from sentence_transformers import CrossEncoder

    quiet_transformers()
    path = str(Path(name).expanduser()) if Path(name).expanduser().exists() else name
    try:
        model = CrossEncoder(path, device=device, num_labels=1)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load reranker {name!r}: {e}") from e
    return Reranker(name, model)


__all__ = [
    "BUNDLED_EMBEDDERS",
    "BUNDLED_GENERATORS",
    "Embedder",
    "Generation",
    "Generator",
    "ModelLoadError",
    "Reranker",
    "TransformersGenerator",
    "generator_path",
    "load_embedder",
    "load_generator",
    "load_reranker",
    "load_tokenizer",
    "resolve_device",
    "torch_dtype",
]
