"""The ``eval`` stage."""
