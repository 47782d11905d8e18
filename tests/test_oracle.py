"""Oracle reading with the tiny model: the gold passage in the RAG layout, stored and rescored."""

from core.prompts import answer_messages
from core.types import Context
from eval.attribution import GoldPassage, gold_passages
from eval.run.oracle import (
    GoldReader,
    OracleReading,
    oracle_contexts,
    oracle_reading,
    read_gold,
    rescore_oracle,
)
from strategies.base import PromptConfig, StrategyContext


def test_oracle_reads_the_gold_passage_in_the_rag_layout(chunked_mini, tiny_models, tmp_path):
    corpus, pairs = chunked_mini
    gold = gold_passages(pairs, corpus)
    gold["q3"] = GoldPassage(None, None, "none")  # a question without a passage is not asked
    ctx = StrategyContext(models=tiny_models, workdir=tmp_path)
    asked, answers, cost = read_gold(ctx, PromptConfig(), corpus, pairs, gold, batch_size=4)
    assert [p.id for p in asked] == [p.id for p in pairs if p.id != "q3"]
    assert len(answers) == len(asked)
    # The prompt is the one RAG would build with this passage as its only retrieved chunk.
    reader = GoldReader(PromptConfig(), ctx, oracle_contexts(pairs, gold))
    reader.prepare(corpus, [])
    first = asked[0]
    passage = Context(gold[first.id].text, source=gold[first.id].source)
    want = ctx.generator.render(answer_messages(first.question, reader.system, passages=[passage]))
    n_prompt = len(ctx.generator.tokenizer(want, add_special_tokens=False)["input_ids"])
    assert answers[0].cost.prompt_tokens == n_prompt
    assert answers[0].contexts[0].text == passage.text
    assert cost["wall_s"] > 0 and cost["cpu_s"] > 0 and "contended" in cost

    record = oracle_reading(asked, answers, gold, cost)
    assert record.found == {"answer": 9, "none": 1}
    rescore_oracle(record, ["exact_match", "f1"], n_resamples=200)
    assert set(record.scores) == {"exact_match", "f1"}
    assert record.summary["f1"].n == len(asked)
    again = OracleReading.from_dict(record.to_dict())
    assert again == record and again.mean("f1") == record.summary["f1"].mean


def test_rescore_scores_stored_answers():
    record = OracleReading(
        n=2,
        answers={"a": {"text": "the thymus"}, "b": {"text": "bone"}},
        golds={"a": ["thymus"], "b": ["marrow"]},
        passages={"a": "The thymus.", "b": "Bone marrow."},
    )
    rescore_oracle(record, ["exact_match", "groundedness"], n_resamples=100)
    assert record.scores["exact_match"] == {"a": 1.0, "b": 0.0}
    assert record.scores["groundedness"] == {"a": 1.0, "b": 1.0}
    assert record.mean("exact_match") == 0.5
