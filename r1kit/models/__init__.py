"""Model and tokenizer loading (hub, local directory, or the locally built tiny model)."""
