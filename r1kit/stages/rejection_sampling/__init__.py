"""The ``rejection_sampling`` stage."""
