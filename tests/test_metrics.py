"""Metrics against hand-worked cases; EM/F1 follow the official SQuAD v1.1 script."""

import pytest

from core.types import Context
from eval.metrics import (
    METRICS,
    ScoringItem,
    exact_match_score,
    f1_score,
    normalize_answer,
    rouge_l,
    score_items,
)


def test_squad_normalisation():
    # lower case, punctuation removed, articles removed, whitespace collapsed
    assert normalize_answer("The  Thymus!") == "thymus"
    assert normalize_answer("An apple, a pear and THE plum.") == "apple pear and plum"
    assert normalize_answer("theory") == "theory"  # 'the' only as a whole word
    assert normalize_answer("U.S.") == "us"


def test_exact_match():
    assert exact_match_score("the Thymus.", "thymus") == 1.0
    assert exact_match_score("thymus gland", "thymus") == 0.0


def test_f1_hand_worked():
    # pred tokens: [doctor, of, pharmacy, degree]; gold: [doctor, of, pharmacy]
    # common 3 -> precision 3/4, recall 1 -> F1 = 2*0.75/(1.75) = 0.857142...
    assert f1_score("a Doctor of Pharmacy degree", "Doctor of Pharmacy") == pytest.approx(6 / 7)
    assert f1_score("nothing here", "antibodies") == 0.0
    # repeated tokens count once per occurrence (Counter intersection)
    assert f1_score("cells cells", "cells") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_rouge_l_hand_worked():
    # pred [b, c, d] vs gold [b, x, d]: lcs 2 -> p = r = 2/3 -> F = 2/3
    assert rouge_l("b c d", "b x d") == pytest.approx(2 / 3)
    assert rouge_l("", "x") == 0.0
    # order matters for ROUGE-L but not for F1
    assert rouge_l("d c b", "b c d") == pytest.approx(1 / 3)
    assert f1_score("d c b", "b c d") == 1.0
    # rouge-score's tokenizer: lower case, every non-alphanumeric run is a separator
    assert rouge_l("T-cells, B-cells", "t cells b cells") == 1.0


def test_rouge_l_is_the_rouge_score_package():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for pred, gold in [("the bone marrow", "bone marrow"), ("a b c a", "c a b"), ("x", "y z")]:
        assert rouge_l(pred, gold) == scorer.score(gold, pred)["rougeL"].fmeasure


def test_best_over_golds_and_registry():
    items = [ScoringItem("thymus", ("the bone marrow", "the thymus"))]
    scores = score_items(items, ["exact_match", "f1", "rouge_l"])
    # ROUGE-L keeps articles (rouge-score does not apply the SQuAD normalisation)
    assert scores == {"exact_match": [1.0], "f1": [1.0], "rouge_l": [pytest.approx(2 / 3)]}
    assert all(METRICS[m].higher_is_better for m in METRICS)


def test_groundedness_and_recall():
    ctx = [Context("B cells produce antibodies.", kind="chunk")]
    items = [
        ScoringItem("antibodies", ("antibodies",), ctx),  # supported, retrieved
        ScoringItem("antibodies and cheese", ("cheese",), ctx),  # 1 of 3 tokens supported
        ScoringItem("antibodies", ("antibodies",), []),  # closed book: not applicable
        ScoringItem("x", ("antibodies",), [Context("Q: a\nA: b", kind="shot")]),
    ]
    s = score_items(items, ["groundedness", "recall_at_k"])
    assert s["groundedness"][:3] == [1.0, pytest.approx(1 / 3), None]
    assert s["groundedness"][3] == 0.0
    assert s["recall_at_k"] == [1.0, 0.0, None, None]  # shots are not retrieval


def test_recall_whole_words():
    ctx = [Context("The pharmacy opened.", kind="chunk")]
    assert score_items([ScoringItem("", ("pharma",), ctx)], ["recall_at_k"]) == {
        "recall_at_k": [0.0]
    }


class _FakeEmbedder:
    """Maps each text to a fixed vector so cosine values are known."""

    def encode(self, texts):
        import numpy as np

        table = {"yes": [1.0, 0.0], "yeah": [0.6, 0.8], "no": [0.0, 1.0], "": [0.0, 1.0]}
        return np.asarray([table[t] for t in texts], dtype=np.float32)


def test_semantic_similarity_best_gold_and_empty():
    items = [ScoringItem("yeah", ("no", "yes")), ScoringItem("", ("yes",))]
    s = score_items(items, ["semantic_similarity"], _FakeEmbedder())
    assert s["semantic_similarity"] == [pytest.approx(0.8), 0.0]


def test_semantic_similarity_needs_embedder():
    with pytest.raises(ValueError, match="embedder"):
        score_items([ScoringItem("a", ("a",))], ["semantic_similarity"])
