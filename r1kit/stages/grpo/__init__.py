"""The ``grpo`` stage."""
