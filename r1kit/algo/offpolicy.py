"""DeepSeek-V3.2's off-policy sequence masking (arXiv:2512.02556, §3.1, eq. 9).

Negative samples that the current policy has already moved far away from carry a misleading
signal (they were bad under π_old; pushing their probability down further mostly destabilises
training). V3.2 drops them from the surrogate::

    M_i = 0  if  A_i < 0  and  (1/|o_i|) Σ_t log(π_old(o_{i,t}) / π_θ(o_{i,t}))  >  δ
    M_i = 1  otherwise

The left side is the per-token KL(π_old ‖ π_θ) estimate (k1) over the sampled tokens, so δ is a
threshold on how far the policy moved. Positive-advantage sequences are always kept. π_old is
the loss's behaviour policy (``old_logp``): V3.2 means the inference engine's, which it is when
the sampler's own log-probs are π_old (μ > 1 with an exact sampler, or pipelined rollouts); with
a vLLM sampler the engine/trainer gap is what the ``importance_correction`` family handles.
The mask carries no gradient (TRL's ``off_policy_mask_threshold`` is the same rule).
"""

from __future__ import annotations

import torch
from torch import Tensor


def off_policy_sequence_mask(logp: Tensor, old_logp: Tensor, advantages: Tensor, valid: Tensor,
                             delta: float) -> Tensor:
    """``(N,)`` bool: True for the rows the surrogate keeps (rule above). Rows with no valid
    token have a mean of 0 and are kept (they count nowhere anyway)."""
    with torch.no_grad():
        drift = torch.where(valid, old_logp - logp, 0.0).sum(-1) / valid.sum(-1).clamp(min=1)
        return ~((advantages < 0) & (drift > delta))
