"""The shared answer wrapper: message layout and answer clean-up."""

import pytest

from core.prompts import answer_messages, clean_answer, describe_domain
from core.types import Context, Corpus, Document, QAPair


@pytest.mark.parametrize(
    "raw, want",
    [
        ("antibodies", "antibodies"),
        ("  \n\nAnswer: the thymus\nmore text", "the thymus"),
        ("The answer is: Paris.", "Paris."),
        ("The answer to this question is:\n\nthe Emperor", "the Emperor"),
        ("The answer is:", ""),
        ('"pharma"', "pharma"),
        ("Answer the door", "Answer the door"),  # not a lead-in
        ("Answering machines", "Answering machines"),
        ("New duties, including:\n- counselling\n- vaccines", "New duties, including: counselling"),
        ("", ""),
    ],
)
def test_clean_answer(raw, want):
    assert clean_answer(raw) == want


def test_messages_layout():
    shots = [QAPair("1", "Q1?", ("A1",))]
    m = answer_messages("Q?", "SYS", shots=shots)
    assert [x["role"] for x in m] == ["system", "user", "assistant", "user"]
    assert m[2]["content"] == "A1" and m[-1]["content"] == "Question: Q?"
    m = answer_messages("Q?", "SYS", passages=[Context("text one", source="a.md")])
    assert "Passage from a.md:\ntext one" in m[-1]["content"] and m[-1]["content"].endswith(
        "Question: Q?"
    )


def test_describe_domain():
    corpus = Corpus([Document("Immune_system.md", "x"), Document("sub/Pharmacy.md", "y")], [])
    assert describe_domain(corpus) == "Immune system, Pharmacy"
    assert describe_domain(corpus, " cardiology ") == "cardiology"
