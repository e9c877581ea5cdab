"""Built-in reward plugins (``accuracy``, ``format``, ``language``) and the harness that runs them.

Each module registers its reward through ``r1kit_register_rewards``, the same hook a third-party
package implements; :mod:`r1kit.rewards.harness` runs a composed set of rewards on a batch.
"""
