"""The ``code`` reward: run the model's program against a row's tests, in a sandbox.

- :mod:`~r1kit.rewards.code.reward` -- the reward and its options;
- :mod:`~r1kit.rewards.code.extract` -- finding the program in a completion;
- :mod:`~r1kit.rewards.code.testcases` -- a row's tests and output comparison;
- :mod:`~r1kit.rewards.code.runners` -- language runners (a plugin kind; Python built in);
- :mod:`~r1kit.rewards.code.sandbox` -- one isolated, resource-limited run;
- :mod:`~r1kit.rewards.code.isolation` -- the OS isolation backends (bwrap, unshare, none);
- :mod:`~r1kit.rewards.code.plugin` -- the registration hooks.
"""
