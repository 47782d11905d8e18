"""The `adaptlab` command (also `python -m eval`): a thin layer over the eval and service
libraries."""
