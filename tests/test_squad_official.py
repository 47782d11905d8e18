"""EM and F1 re-checked against the official SQuAD v1.1 evaluation script on generated answers.

The three functions below are copied verbatim from the published `evaluate-v1.1.py`
(rajpurkar.github.io/SQuAD-explorer), only reformatted; ours must agree on every pair.
"""

import random
import re
import string
from collections import Counter
from pathlib import Path

import pytest

from core.qa import load_qa
from eval.metrics import ScoringItem, score_items

# --- official evaluate-v1.1.py ---------------------------------------------------------------


def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""

    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


# --- generated predictions --------------------------------------------------------------------

SAMPLE_QA = Path(__file__).resolve().parents[1] / "sample_data" / "qa.jsonl"
NOISE = ["the", "a", "An", "cells", ",", ".", "!", "'s", "(", ")", "-", "THE", "é", "  ", "\t"]


def _perturb(answer: str, pool: list[str], rng: random.Random) -> str:
    """A prediction near (or far from) `answer`: case, articles, punctuation, dropped, added or
    foreign words, or another pair's answer."""
    words = answer.split()
    kind = rng.randrange(7)
    if kind == 0:
        return answer
    if kind == 1:
        return answer.upper() if rng.random() < 0.5 else answer.lower()
    if kind == 2 and words:
        words.pop(rng.randrange(len(words)))
    elif kind == 3:
        words.insert(rng.randrange(len(words) + 1), rng.choice(NOISE))
    elif kind == 4:
        words = [w + rng.choice(NOISE) if rng.random() < 0.3 else w for w in words]
    elif kind == 5:
        return rng.choice(pool)
    else:
        rng.shuffle(words)
        words += rng.choice(pool).split()[:2]
    return " ".join(words)


def _generated(n: int = 400, seed: int = 0) -> list[tuple[str, tuple[str, ...]]]:
    pairs = load_qa(SAMPLE_QA)
    pool = [a for p in pairs for a in p.answers]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = rng.choice(pairs)
        out.append((_perturb(rng.choice(p.answers), pool, rng), p.answers))
    return out


def test_em_and_f1_match_the_official_script_on_every_pair():
    cases = _generated()
    items = [ScoringItem(pred, golds) for pred, golds in cases]
    ours = score_items(items, ["exact_match", "f1"])
    em = [float(metric_max_over_ground_truths(exact_match_score, p, g)) for p, g in cases]
    f1 = [float(metric_max_over_ground_truths(f1_score, p, g)) for p, g in cases]
    assert ours["exact_match"] == em
    assert ours["f1"] == pytest.approx(f1, abs=1e-12)
    # The generated set is not degenerate: it has hits, misses and partial overlaps.
    assert 0 < sum(em) < len(em)
    assert any(0 < x < 1 for x in f1)
