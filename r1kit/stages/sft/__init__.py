"""The ``sft`` stage."""
