"""Power figures against the textbook formula and hand-worked values."""

import math

import pytest

from eval.stats.power import (
    min_detectable_difference,
    paired_sd,
    power_line,
    questions_needed,
)

Z = 1.959963984540054 + 0.8416212335729143  # z[0.975] + z[0.8]


def test_mdd_is_the_normal_formula():
    assert min_detectable_difference(1.0, 100) == pytest.approx(Z / 10)
    assert min_detectable_difference(0.4, 40) == pytest.approx(Z * 0.4 / math.sqrt(40))
    assert min_detectable_difference(0.4, 1) is None
    # More questions, smaller detectable gap; four times the questions halve it.
    assert min_detectable_difference(0.4, 160) == pytest.approx(
        min_detectable_difference(0.4, 40) / 2
    )


def test_mdd_other_alpha_and_power():
    z = 2.5758293035489004 + 1.2815515655446004  # z[0.995] + z[0.9]
    assert min_detectable_difference(1.0, 25, alpha=0.01, power=0.9) == pytest.approx(z / 5)
    with pytest.raises(ValueError):
        min_detectable_difference(1.0, 25, alpha=0.0)


def test_questions_needed_inverts_the_mdd():
    # (Z * 0.5 / 0.1)^2 = 196.2 -> 197
    assert questions_needed(0.5, 0.1) == 197
    assert questions_needed(0.5, 0.0) is None
    n = questions_needed(0.3, 0.05)
    assert min_detectable_difference(0.3, n) <= 0.05 < min_detectable_difference(0.3, n - 1)


def test_paired_sd():
    assert paired_sd([1.0, 0.0, 1.0, 0.0]) == pytest.approx(math.sqrt(1 / 3))
    assert paired_sd([0.5]) is None


def test_power_line_on_shared_questions():
    a = {"q1": 1.0, "q2": 0.0, "q3": 1.0, "q4": 0.5, "only_a": 1.0}
    b = {"q1": 0.0, "q2": 0.0, "q3": 0.0, "q4": 0.5, "only_b": 0.0}
    line = power_line(a, b, names=("rag", "base"), metric="f1", target=0.1)
    assert line.n == 4
    assert line.mean_diff == pytest.approx(0.5)
    sd = paired_sd([1.0, 0.0, 1.0, 0.0])
    assert line.sd == pytest.approx(sd)
    # graded scores: the sign-flip test, whose smallest p on two differing questions is 0.5:
    # no gap is detectable on these four questions (the normal formula said 1.4)
    assert line.test == "sign-flip, simulated" and line.mdd is None
    assert not line.detectable
    assert "4 questions cannot detect any gap" in line.sentence()
    d = line.to_dict()
    assert d["detectable"] is False and d["sentence"] == line.sentence()


def test_power_line_without_spread():
    same = {"q1": 0.5, "q2": 0.5}
    line = power_line(same, same, names=("a", "b"), metric="f1", target=0.05)
    assert line.sd == 0 and line.mdd == 0
    assert "no spread" in line.sentence()
    assert "too few" in power_line({}, {}, names=("a", "b"), metric="f1", target=0.05).sentence()
