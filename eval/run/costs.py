"""Measuring what each step costs: wall time, peak memory, and money from the price table."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from core.config import PriceTable
from core.types import Answer
from eval.records import CostSummary, PreparedRecord
from eval.run.contention import CpuSample, tokens_per_s
from eval.stats.intervals import percentile


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0  # highest resident memory of the process during the step
    added_rss_mb: float = 0.0  # that peak minus the memory held when the step began
    peak_gpu_mb: float | None = None


class measure:
    """Context manager timing a step and sampling the process's memory while it runs.

    RSS is sampled every `interval` seconds in a thread (torch allocates outside Python's heap,
    so tracemalloc would miss it); on CUDA the allocator's own peak is read as well.
    """

    def __init__(self, device: str = "cpu", interval: float = 0.02):
        self.device = device
        self.interval = interval
        self.result = Measurement()

    def __enter__(self) -> Measurement:
        import psutil

        self._proc = psutil.Process()
        self._base = self._peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._t0 = time.perf_counter()
        self._thread.start()
        return self.result

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self.result.seconds = time.perf_counter() - self._t0
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._proc.memory_info().rss)
        self.result.peak_rss_mb = self._peak / 2**20
        self.result.added_rss_mb = max(0, self._peak - self._base) / 2**20
        if self.device.startswith("cuda"):
            import torch

            self.result.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20


def price(seconds: float, device: str, prices: PriceTable) -> float:
    """Money for `seconds` of machine time on `device` at the table's hourly rate."""
    return seconds * prices.per_second(device)


def summarize_costs(
    answers: list[Answer],
    prepare: PreparedRecord,
    answering: Measurement,
    device: str,
    prices: PriceTable,
    answer_cpu: CpuSample | None = None,
) -> CostSummary:
    """One strategy's costs from its answers, its stored `prepare` record (time, memory,
    parameters, artifact, CPU sample) and the measurements around answering (wall and memory;
    CPU time and contention in `answer_cpu`)."""
    lat = [a.cost.latency_s for a in answers]
    n = max(1, len(answers))
    mean_latency = sum(lat) / n
    return CostSummary(
        device=device,
        questions=len(answers),
        prepare_s=prepare.seconds,
        prepare_added_mb=prepare.added_rss_mb,
        answer_s=answering.seconds,
        answer_added_mb=answering.added_rss_mb,
        peak_rss_mb=max(prepare.peak_rss_mb or 0.0, answering.peak_rss_mb),
        peak_gpu_mb=answering.peak_gpu_mb,
        latency_mean_s=mean_latency,
        latency_p50_s=percentile(lat, 50),
        latency_p95_s=percentile(lat, 95),
        prompt_tokens_mean=sum(a.cost.prompt_tokens for a in answers) / n,
        output_tokens_mean=sum(a.cost.output_tokens for a in answers) / n,
        trainable_params=prepare.trainable_params,
        artifact_mb=prepare.artifact_bytes / 2**20,
        price_prepare=price(prepare.seconds or 0.0, device, prices),
        price_per_1k=price(mean_latency * 1000, device, prices),
        currency=prices.currency,
        **_cpu_costs(answers, prepare.cpu, answer_cpu),
    )


def _cpu_costs(
    answers: list[Answer], prep: dict | None, ans: CpuSample | None
) -> dict[str, float | int | bool | None]:
    """CPU seconds per question, throughput, and whether the machine was contended while the
    strategy prepared or answered (the rule in eval.run.contention)."""
    if ans is None:
        return {}
    n = max(1, len(answers))
    out_tokens = sum(a.cost.output_tokens for a in answers)
    prep_contended = bool(prep and prep.get("contended"))
    return {
        "cpu_mean_s": sum(a.cost.cpu_s for a in answers) / n,
        "prepare_cpu_s": prep.get("cpu_s") if prep else None,
        "answer_cpu_s": ans.cpu_s,
        "threads": ans.threads,
        "output_tokens_per_s": tokens_per_s(out_tokens, ans.wall_s),
        "output_tokens_per_cpu_s": tokens_per_s(out_tokens, ans.cpu_s),
        "others_cores": ans.others_cores,
        "contended_prepare": prep_contended,
        "contended_answer": ans.contended,
        "contended": prep_contended or ans.contended,
    }
