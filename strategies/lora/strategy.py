"""The LoRA strategy: train a low-rank adapter on the corpus and the training Q/A pairs.

Training modes: `qa` (supervised Q/A, loss on the answer only), `cpt` (continued pretraining on
raw chunks), `mix` (both) and `raft` (retrieval-aware: each Q/A prompt carries retrieved
passages laid out as RAG shows them, the passage holding the answer among distractors, or left
out for a share of examples, as in RAFT, Zhang et al. 2024). The loop itself lives in
`strategies.lora.loop` and runs through `accelerate`; `python -m strategies.lora.train` runs the
same training in several processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path

from core.prompts import answer_messages
from core.qa import split_validation
from core.types import Answer, Corpus, PrepareReport, QAPair
from core.untrusted.paths import find_file
from strategies.base import GenerativeStrategy, RunCancelled
from strategies.lora.corpus_facts import HeldOut, corpus_fact_pairs
from strategies.lora.data import (
    RaftStats,
    chunk_examples,
    qa_example,
    raft_example,
    raft_passages,
)
from strategies.lora.loop import train_adapter
from strategies.lora.settings import LoraStrategyConfig
from strategies.rag import RagConfig, RagStrategy
from strategies.registry import register_strategy


@register_strategy("lora")
class LoraStrategy(GenerativeStrategy):
    config_class = LoraStrategyConfig
    trains = True
    training_section = "training"
    default = True
    accepts_adapter = True
    description = "LoRA fine-tune: a low-rank adapter trained on the training Q/A pairs."
    display_name = "LoRA fine-tune"

    def prepare(self, corpus: Corpus, train: list[QAPair]) -> PrepareReport:
        """Train an adapter (or load `adapter_path`) on the shared generator.

        Raises ValueError when the mode has no data to learn from or the adapter cannot be read.
        """
        if self.config.adapter_path:
            return self._load(corpus)
        import torch

        cfg = self.config
        mode = cfg.effective_mode
        _check_inputs(mode, corpus, train)
        gen = self.ctx.generator
        self.set_system_prompt(corpus)
        fit, held = _validation_split(cfg, train)
        generated = self._corpus_pairs(corpus, train) if mode != "cpt" else []
        # A format or style task trains on its formatted targets (the JSON object, the styled
        # sentence), under the system prompt carrying the task's instruction.
        examples, info = self._examples(corpus, self.targets(fit + generated), mode)
        val_mode = "raft" if mode == "raft" else "qa"
        val_examples, _ = self._examples(corpus, self.targets(held), val_mode)
        if not examples:
            raise ValueError("lora: no training example survived tokenisation")

        key = hashlib.sha256(
            json.dumps([corpus.fingerprint, cfg.to_dict(), [p.id for p in train]]).encode()
        ).hexdigest()[:12]
        self.adapter = f"lora-{key}"
        torch.manual_seed(cfg.training.seed)
        with gen.lock:
            model = gen.attach_adapter(self.adapter, self.peft_config())
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            log = train_adapter(
                model,
                examples,
                val_examples,
                cfg.training,
                pad_id=gen.tokenizer.pad_token_id,
                device=gen.device,
                progress=self.ctx.progress,
                cancelled=self.ctx.cancelled,
                cancel_exc=RunCancelled,
            )
            out = self.ctx.workdir / "lora" / self.adapter
            if _is_main_process():
                model.save_pretrained(str(out), selected_adapters=[self.adapter])
            _wait_for_everyone()  # other processes read the saved folder's size next
        saved = _adapter_dir(out)
        log.mode = mode
        return PrepareReport(
            trainable_params=int(trainable),
            artifact_bytes=_folder_bytes(saved),
            artifact_path=str(saved),
            details={
                "mode": mode,
                "qa_examples": info["qa"],
                "chunk_examples": info["chunks"],
                "data": cfg.data,
                "corpus_pairs": len(generated),
                **info.get("raft", {}),
            },
            training=log,
        )

    def _corpus_pairs(self, corpus: Corpus, train: list[QAPair]) -> list[QAPair]:
        """pairs+corpus: pairs generated from every corpus fact, leaving out the test pairs
        and the training pairs themselves (validation pairs included, so it stays held out)."""
        cfg = self.config
        if cfg.data != "pairs+corpus":
            return []
        guard = HeldOut([*self.ctx.held_out, *train])
        result = corpus_fact_pairs(
            corpus,
            phrasings=cfg.corpus_phrasings,
            held_out=guard,
            paraphrase_with=self.ctx.generator if cfg.corpus_paraphrases else None,
            max_pairs=cfg.corpus_max_pairs,
        )
        self.ctx.progress({"stage": "corpus_pairs", **result.stats})
        return result.pairs

    def peft_config(self):
        """The peft LoraConfig this strategy's settings describe."""
        from peft import LoraConfig

        cfg = self.config
        return LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=cfg.target_modules[0]
            if cfg.target_modules == ["all-linear"]
            else list(cfg.target_modules),
            task_type="CAUSAL_LM",
        )

    def _examples(self, corpus: Corpus, pairs: list[QAPair], mode: str):
        """(examples, info) for `mode`; info counts Q/A and chunk examples (and raft figures)."""
        gen, cfg = self.ctx.generator, self.config
        out, info = [], {"qa": 0, "chunks": 0}
        if mode in ("qa", "mix"):
            for pair in pairs:
                messages = answer_messages(pair.question, self.system)
                ex = qa_example(gen, messages, pair.answers[0], cfg.max_seq_tokens)
                if ex is not None:
                    out.append(ex)
        elif mode == "raft" and pairs:
            out, info["raft"] = self._raft_examples(corpus, pairs)
        info["qa"] = len(out)
        if mode in ("cpt", "mix"):
            chunks = chunk_examples(gen, corpus.chunks, cfg.max_seq_tokens)
            out.extend(chunks)
            info["chunks"] = len(chunks)
        return out, info

    def _raft_examples(self, corpus: Corpus, pairs: list[QAPair]):
        gen, cfg = self.ctx.generator, self.config
        # The retriever RAG answers with, composed rather than copied; its own work folder so
        # it never shares an index file with a `rag` strategy of the same run.
        ctx = dataclasses.replace(self.ctx, workdir=self.ctx.workdir / "lora-raft")
        if getattr(self, "_retriever", None) is None:  # built once for train and validation
            self._retriever = RagStrategy(RagConfig(top_k=cfg.raft_passages + 1), ctx)
            self._retriever.prepare(corpus, [])
        retrieved = self._retriever.retrieve([p.question for p in pairs])
        rng = random.Random(cfg.training.seed)
        stats = RaftStats()
        out = []
        for pair, hits in zip(pairs, retrieved, strict=True):
            drop = rng.random() < cfg.raft_no_oracle
            passages, has_oracle = raft_passages(
                pair, hits, corpus, cfg.raft_passages, drop, rng, self.ctx.task
            )
            if not has_oracle and not drop:
                stats.no_oracle_found += 1
            ex = raft_example(
                gen,
                pair.question,
                pair.answers[0],
                self.system,
                passages,
                cfg.max_seq_tokens,
                instruction=self.context_instruction,
            )
            if ex is None:
                continue
            out.append(ex)
            stats.with_oracle += has_oracle
            stats.without_oracle += not has_oracle
        return out, {
            "raft_with_oracle": stats.with_oracle,
            "raft_without_oracle": stats.without_oracle,
            "raft_no_oracle_found": stats.no_oracle_found,
        }

    def _load(self, corpus: Corpus) -> PrepareReport:
        """Load the saved adapter at `adapter_path` instead of training."""
        path = Path(self.config.adapter_path).expanduser()
        if not path.is_dir():
            raise ValueError(f"lora adapter_path {str(path)!r} is not a folder")
        folder = _adapter_dir(path)
        config_file = folder / "adapter_config.json"
        if not config_file.is_file():
            raise ValueError(f"lora adapter_path {str(path)!r} holds no adapter_config.json")
        try:
            saved = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"lora adapter_path: unreadable adapter_config.json: {e}") from e
        gen = self.ctx.generator
        self.set_system_prompt(corpus)
        details: dict = {"loaded from": str(folder), "device": gen.device, "mode": "loaded"}
        base = str(saved.get("base_model_name_or_path") or "")
        ours = str(getattr(gen.model.config, "_name_or_path", "") or "")
        if base and ours and not _same_model(base, ours):
            details["warning"] = (
                f"the adapter was trained on {base!r}, the generator is {ours!r}: answers may "
                "be poor or loading may fail"
            )
        key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
        self.adapter = f"lora-loaded-{key}"
        try:
            gen.load_adapter(self.adapter, folder)
        except Exception as e:  # peft raises many kinds for an adapter that does not fit
            raise ValueError(
                f"lora adapter at {str(folder)!r} does not fit generator {gen.name!r}: "
                f"{type(e).__name__}: {e}"
            ) from e
        n_params = sum(
            p.numel() for n, p in gen.peft_model.named_parameters() if f".{self.adapter}." in n
        )
        return PrepareReport(
            trainable_params=int(n_params),
            artifact_bytes=_folder_bytes(folder),
            artifact_path=str(folder),
            details=details,
        )

    @classmethod
    def held_out_pairs(cls, config, train):
        """`val_fraction` of the training pairs, drawn with the training seed: validation loss,
        early stopping and the best checkpoint read them; no example is made from them."""
        return _validation_split(config, train)[1]

    @classmethod
    def reuse_config(cls, config, prepared):
        """Point `adapter_path` at the stored adapter, so it is loaded, not trained again."""
        path = (prepared or {}).get("artifact_path")
        return config.replace(adapter_path=str(path)) if path else config

    def answer(self, questions: list[str]) -> list[Answer]:
        return self.generate_answers(questions, self.system)

    def close(self) -> None:
        if self.adapter is not None:
            self.ctx.generator.detach_adapter(self.adapter)


def _validation_split(cfg: LoraStrategyConfig, train: list[QAPair]):
    """(pairs trained on, pairs held out): one draw for `prepare` and `held_out_pairs`, so
    tuning scores a trial on exactly what the adapter never trained on."""
    return split_validation(train, cfg.val_fraction, cfg.training.seed)


def _check_inputs(mode: str, corpus: Corpus, train: list[QAPair]) -> None:
    """Raise ValueError when training mode `mode` has nothing to learn from."""
    if mode in ("qa", "raft") and not train:
        raise ValueError(f"lora mode {mode!r} needs training Q/A pairs")
    if mode in ("cpt", "raft") and not corpus.chunks:
        raise ValueError(f"lora mode {mode!r} needs a corpus with at least one chunk")
    if mode == "mix" and not train and not corpus.chunks:
        raise ValueError("lora needs training Q/A pairs or corpus chunks")


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _wait_for_everyone() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def _same_model(a: str, b: str) -> bool:
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a.rstrip("/") == b.rstrip("/")


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def _adapter_dir(root: Path) -> Path:
    """peft saves a non-default adapter name in a subfolder; find the folder holding it.

    Bounded depth: `adapter_path` may be typed by a user, and a root of `/` must not walk the
    whole file system."""

    found = find_file(root, "adapter_config.json", max_depth=3)
    return found.parent if found else Path(root)
