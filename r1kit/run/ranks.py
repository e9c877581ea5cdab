"""Which process is global rank 0, before (or without) a Lightning Trainer.

Only rank 0 writes run-level files (metadata, manifests, summaries). Every launcher says a
process's rank in the environment: torchrun and the DeepSpeed launcher set ``RANK``; Lightning's
own launcher sets ``LOCAL_RANK`` in the processes it starts and the user sets ``NODE_RANK`` on the
other nodes; ``srun`` (and so the submitit SLURM launcher) sets ``SLURM_PROCID``. A process is
rank 0 when none of them names another rank.
"""

from __future__ import annotations

import os

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID",
                  "JSM_NAMESPACE_RANK")


def is_global_zero() -> bool:
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value != "0":
            return False
    return True
