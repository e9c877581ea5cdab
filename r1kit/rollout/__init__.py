"""Rollouts: the batch of sampled, scored completions (``batch``) and how one is built (``collector``)."""
