"""Generation engines: the contract and registry (base), in-process transformers, OpenAI-compatible
servers, model files."""
