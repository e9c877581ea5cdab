"""The modules use torch's fused AdamW where it applies, and the same update as the default."""


import torch

from r1kit.stages.module_common import PolicyOptimizer, fused_adamw
from r1kit.config.schema import OptimConfig

CFG = OptimConfig(lr=1e-2, weight_decay=0.1, betas=[0.9, 0.99], warmup_steps=0)


class DeepSpeedStrategy:  # only the class name is read
    pass


def test_fused_on_cpu_parameters_not_under_deepspeed():
    policy = torch.nn.Linear(4, 3)
    optimizer = PolicyOptimizer(CFG, policy).configure(trainer=None)["optimizer"]
    assert optimizer.defaults["fused"] is True
    assert fused_adamw(list(policy.parameters()), DeepSpeedStrategy()) is None


def test_fused_update_equals_the_default_update():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    b.load_state_dict(a.state_dict())
    initial = [p.detach().clone() for p in a.parameters()]
    fused = PolicyOptimizer(CFG, a).configure(trainer=None)["optimizer"]
    plain = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99))
    for _ in range(3):
        x = torch.randn(5, 8)
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for p, q, start in zip(a.parameters(), b.parameters(), initial):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        assert (p - start).abs().max() > 1e-3  # the steps did move the weights
