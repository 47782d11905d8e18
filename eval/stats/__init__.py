"""Statistics over per-question scores: intervals, paired tests, the decision's figures, power,
stability, agreement."""
