"""The verdict views: what to use and why, how sure, the recommendation in words, diagnostics,
re-split stability."""
