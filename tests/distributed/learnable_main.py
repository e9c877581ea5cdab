"""``python -m tests.distributed.learnable_main [overrides]``: r1kit's command line with the
test reward ``sevens`` installed, so a multi-process run (Lightning's launcher runs this same
module for every rank) has rewards a tiny random model can move."""

from r1kit.plugin import manager
from tests.training import learnable_reward

if __name__ == "__main__":
    manager.install(extra_plugins=(learnable_reward,))
    from r1kit.__main__ import main

    main()
