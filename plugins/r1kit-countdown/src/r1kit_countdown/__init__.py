"""The Countdown numbers game as an r1kit plugin: the ``countdown`` dataset and reward."""

__version__ = "0.1.0"
