"""The run directory: metadata, loggers, samples, checkpoints."""
