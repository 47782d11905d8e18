"""The per-job GPU memory cap (service.limits.limit_gpu_memory) on a real CUDA device: an
allocation past the operator's share fails in the job, one under it succeeds."""

from __future__ import annotations

import pytest

from service.limits import WorkerLimits, limit_gpu_memory

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_job_cannot_allocate_past_its_share_of_the_gpu():
    assert limit_gpu_memory(WorkerLimits(gpu_memory_fraction=0.25)) == 0.25
    total = torch.cuda.get_device_properties(0).total_memory
    with pytest.raises(torch.OutOfMemoryError):
        torch.empty(int(total * 0.4), dtype=torch.uint8, device="cuda")
    ok = torch.empty(int(total * 0.2), dtype=torch.uint8, device="cuda")
    assert ok.numel() == int(total * 0.2)


def test_no_gpu_no_cap():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    assert limit_gpu_memory(WorkerLimits()) is None
