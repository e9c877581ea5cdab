"""Built-in data filters: ``rl`` (applied to rollouts during RL) and ``rejection`` (used by the
rejection-sampling stage to keep correct, readable samples). Each is a plugin module."""
