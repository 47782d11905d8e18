"""Shared foundations of AdaptLab: types, configuration, corpus ingestion and model loading."""
