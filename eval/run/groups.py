"""Paraphrase groups of the test questions, which the consistency metrics score over.

A Q/A file may say which questions are paraphrases of one another (its `group` field); without
it, the near-duplicate groups the split already finds stand in (they are kept on one side of
the split, so a test group is whole).
"""

from __future__ import annotations

from core.qa import near_duplicate_groups
from core.types import QAPair
from eval.metrics import normalize_answer


def paraphrase_groups(test: list[QAPair], jaccard: float) -> dict[str, str]:
    """Question id -> group id for the test questions in a group of two or more.

    The file's `group` field when any pair has one (pairs without it stand alone), else the
    near-duplicate groups at `jaccard`, named after their first question."""
    if any(p.group for p in test):
        sizes: dict[str, int] = {}
        for p in test:
            if p.group:
                sizes[p.group] = sizes.get(p.group, 0) + 1
        return {p.id: p.group for p in test if p.group and sizes[p.group] > 1}
    out: dict[str, str] = {}
    for members in near_duplicate_groups(test, jaccard):
        if len(members) > 1:
            for i in members:
                out[test[i].id] = test[members[0]].id
    return out


def group_warnings(pairs: list[QAPair]) -> list[str]:
    """One line per declared `group` whose questions share no gold answer (after
    normalisation): perhaps not paraphrases, or a mislabelled answer."""
    golds: dict[str, list[QAPair]] = {}
    for p in pairs:
        if p.group:
            golds.setdefault(p.group, []).append(p)
    out = []
    for group, members in golds.items():
        sets = [{normalize_answer(a) for a in p.answers} for p in members]
        if len(members) > 1 and not set.intersection(*sets):
            ids = ", ".join(p.id for p in members)
            out.append(
                f"group {group!r} ({ids}): its questions carry different gold answers; "
                "check that they are paraphrases"
            )
    return out
