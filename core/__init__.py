"""What every floor shares: types, configuration, registries, corpus and Q/A ingestion, engines."""
