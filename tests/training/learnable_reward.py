"""A test plugin: a reward a tiny random model can learn in a few dozen steps."""

from r1kit import hookimpl


def sevens(completions, examples, options):
    """The fraction of the completion's characters that are the digit 7."""
    return [c.count("7") / max(len(c), 1) for c in completions]


@hookimpl
def r1kit_register_rewards(register):
    register("sevens", sevens)
