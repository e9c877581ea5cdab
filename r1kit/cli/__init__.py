"""The command-line entry points: ``python -m r1kit [score|plugins|compare] ...``."""
