"""The contention rule on hand-made figures, and cpu_clock on real work."""

import subprocess
import sys
import time

import pytest

from eval.run.contention import CpuSample, contended, cpu_clock, tokens_per_s


def test_rule_slow_factor_without_system_figures():
    assert not contended(10.0, 9.0)  # ran 90% of the time
    assert not contended(1.5, 1.0)  # exactly 1.5 x: not above it
    assert contended(15.0, 1.3)  # the app-beside-a-job case: 15 s wall, 1.3 s CPU
    assert not contended(0.0, 0.0)


def test_rule_neighbours():
    # 2 cores, we compute on 2 threads: a neighbour using 0.6 core on average contends.
    assert contended(10.0, 18.0, threads=2, n_cores=2, others_cpu_s=6.0)
    assert not contended(10.0, 18.0, threads=2, n_cores=2, others_cpu_s=4.0)
    # 16 cores, 4 threads: 12 spare cores absorb a neighbour using 10.
    assert not contended(10.0, 38.0, threads=4, n_cores=16, others_cpu_s=100.0)
    assert contended(10.0, 38.0, threads=4, n_cores=16, others_cpu_s=130.0)


def test_sample_properties():
    s = CpuSample(wall_s=10.0, cpu_s=12.0, threads=2, cores=2, others_cpu_s=8.0)
    assert s.others_cores == pytest.approx(0.8)
    assert s.contended
    d = s.to_dict()
    assert d["contended"] is True and d["others_cores"] == pytest.approx(0.8)
    assert CpuSample(wall_s=1.0, cpu_s=1.0).others_cores is None


def test_cpu_clock_counts_our_cpu_not_sleep():
    # Spin until 0.2 s of CPU are used (wall time depends on how busy the machine is).
    with cpu_clock() as busy:
        c0 = time.process_time()
        while time.process_time() - c0 < 0.2:
            pass
    assert 0.2 <= busy.cpu_s < 0.3 and busy.wall_s >= 0.2
    with cpu_clock() as idle:
        time.sleep(0.3)
    assert idle.cpu_s < 0.05 and idle.wall_s >= 0.3
    assert idle.contended  # a waiting process looks like one that gets no core


def test_cpu_clock_sees_a_busy_neighbour():
    burn = "import time\nt=time.time()\nwhile time.time()-t<1.0: pass"
    with cpu_clock() as s:
        subprocess.run([sys.executable, "-c", burn], check=True)
    if s.others_cpu_s is None:
        pytest.skip("no system-wide CPU figures here")
    assert s.others_cpu_s > 0.5  # the child's second of CPU is another process's
    assert s.contended


def test_tokens_per_s():
    assert tokens_per_s(100, 4.0) == 25.0
    assert tokens_per_s(100, 0.0) is None


def test_answers_from_a_model_server_are_never_flagged_contended():
    """The server's CPU, not ours, did the work: waiting on it is not waiting for a core."""
    from core.config import PriceTable
    from core.types import Answer, QAPair
    from eval.run.measurement import StrategyMeasurement

    class Waits:  # answers like a remote engine: wall time passes, this process idles
        def answer(self, batch):
            time.sleep(0.3)
            return [Answer(question=q, text="x") for q in batch]

    questions = [QAPair(id=str(i), question=f"q{i}?", answers=("x",)) for i in range(2)]
    for remote in (False, True):
        m = StrategyMeasurement(2, "cpu", PriceTable(), lambda e: None, lambda: False, remote)
        _, _, cpu = m._answer_test(Waits(), "waits", questions)
        assert cpu.contended is (not remote)  # in process, idling this long means no core
