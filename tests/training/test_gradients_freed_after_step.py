"""The policy's gradients are freed by the optimizer step itself, not at the next update's start:
between steps (the next rollout's generation and reference pass) no gradient is held."""

import torch

from r1kit.config.schema import OptimConfig
from r1kit.stages.module_common import PolicyOptimizer


def test_clip_and_step_frees_the_gradients_it_used():
    torch.manual_seed(0)
    policy = torch.nn.Linear(6, 4)
    cfg = OptimConfig(lr=1e-2, weight_decay=0.0, betas=[0.9, 0.99], warmup_steps=0,
                      max_grad_norm=0.5)
    owner = PolicyOptimizer(cfg, policy)
    optimizer = owner.configure(trainer=None)["optimizer"]
    before = policy.weight.detach().clone()
    (policy(torch.randn(3, 6)) * 10).pow(2).sum().backward()
    norm = owner.clip_and_step(optimizer, None, trainer=None)
    assert norm > 0.5  # clipped, then stepped with the gradient
    assert not torch.equal(policy.weight, before)
    assert all(p.grad is None for p in policy.parameters())
