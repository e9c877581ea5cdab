"""policy_loss against hand-computed values and against a literal double-loop implementation."""

import itertools
import math

import pytest
import torch

from r1kit.algo import AGGREGATIONS, KL_ESTIMATORS, RATIOS, policy_loss
from r1kit.algo.aggregation import grpo_mean
from r1kit.algo.kl import kl_k3

F64 = torch.float64
LN2 = math.log(2.0)
NAN, INF = float("nan"), float("inf")


def hand_batch():
    """3 completions, 2 groups: rows 0 and 1 are group 0 (A = +1, −1), row 2 is group 1 (A = 2).

    Valid tokens and their ratios ρ = π_θ/π_old and x = log(π_ref/π_θ):
        row 0: ρ = [1.5, 0.9]        x = [ln2, 0]      (third position is padding)
        row 1: ρ = [0.5, 1.1, 1.3]   x = [0, 0, −ln2]
        row 2: ρ = [1.05]            x = [ln2]         (two padding positions)
    Padding holds garbage log-probs (±inf, NaN, large values), which must not matter.
    """
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=F64)
    ratio = torch.tensor([[1.5, 0.9, 1.0], [0.5, 1.1, 1.3], [1.05, 1.0, 1.0]], dtype=F64)
    x = torch.tensor([[LN2, 0.0, 0.0], [0.0, 0.0, -LN2], [LN2, 0.0, 0.0]], dtype=F64)
    logp = torch.tensor([[-1.0, -2.0, INF], [-0.5, -1.5, -0.7], [-1.2, 50.0, NAN]], dtype=F64)
    old = logp - ratio.log()
    ref = logp + x
    old[0, 2], old[2, 1], ref[2, 2] = -INF, -50.0, INF
    logp.requires_grad_(True)
    return dict(logp=logp, old_logp=old, ref_logp=ref,
                advantages=torch.tensor([1.0, -1.0, 2.0], dtype=F64), mask=mask,
                group_ids=torch.tensor([4, 4, 9]))


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype))


# ---- hand-computed values -------------------------------------------------------------------

def test_grpo_token_k3_default():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.2, beta=0.1)
    # surrogate_t = min(ρA, clip(ρ, 0.8, 1.2)A):
    #   row 0: [min(1.5, 1.2), 0.9] = [1.2, 0.9]                  mean 1.05
    #   row 1: [min(−0.5, −0.8), −1.1, min(−1.3, −1.2)] = [−0.8, −1.1, −1.3]   mean −16/15
    #   row 2: [2.1]                                              mean 2.1
    # J_surr = mean over groups [ (1.05 − 16/15)/2, 2.1 ] = (−1/120 + 2.1)/2 = 251/240
    surrogate = 251 / 240  # 1.0458333
    # k3: k3(ln2) = 1 − ln2 = 0.3068528, k3(−ln2) = ln2 − ½ = 0.1931472
    #   row means: (1 − ln2)/2, (ln2 − ½)/3, (1 − ln2)
    kl = (((1 - LN2) / 2 + (LN2 - 0.5) / 3) / 2 + (1 - LN2)) / 2  # 0.2078787
    close(out.surrogate, surrogate)
    close(out.kl, kl)
    close(out.loss, -(surrogate - 0.1 * kl))  # −1.0250455
    close(out.clip_high_frac, 1 / 6)  # row 0 token 0 (ρ = 1.5 > 1.2, A > 0)
    # row 1 token 0 (ρ = 0.5 < 0.8, A < 0); row 1's ρ = 1.3 with A < 0 is not clipped
    close(out.clip_low_frac, 1 / 6)
    close(out.ratio_mean, 6.35 / 6)
    out.loss.backward()
    assert torch.isfinite(b["logp"].grad).all()


def test_clip_higher():
    out = policy_loss(**hand_batch(), epsilon=0.2, epsilon_high=0.28)
    # row 0 token 0 becomes min(1.5, 1.28) = 1.28; row 1's 1.3 (A < 0) stays −1.3
    # J = ((1.28 + 0.9)/2 − 16/15)/2 + 2.1)/2 = (7/600 + 2.1)/2 = 1.0558333
    close(out.loss, -(7 / 600 + 2.1) / 2)
    close(out.kl, 0.0)


def test_token_mean_aggregation():
    out = policy_loss(**hand_batch(), epsilon=0.2, beta=0.1, aggregation="token_mean")
    # Σ surrogate = 1.2 + 0.9 − 0.8 − 1.1 − 1.3 + 2.1 = 1.0 over 6 valid tokens
    # Σ k3 = (1 − ln2) + (ln2 − ½) + (1 − ln2) = 1.5 − ln2 over 6 valid tokens
    close(out.surrogate, 1.0 / 6)
    close(out.kl, (1.5 - LN2) / 6)  # 0.1344755
    close(out.loss, -(1.0 / 6 - 0.1 * (1.5 - LN2) / 6))


def test_constant_aggregation():
    out = policy_loss(**hand_batch(), epsilon=0.2, beta=0.1, aggregation="constant",
                      max_completion_length=4)
    # Σ / (3 valid sequences · 4)
    close(out.surrogate, 1.0 / 12)
    close(out.loss, -(1.0 / 12 - 0.1 * (1.5 - LN2) / 12))


@pytest.mark.parametrize("estimator, kl", [
    # per-token D for x = [[ln2, 0], [0, 0, −ln2], [ln2]], aggregated the grpo way
    ("k1", ((-LN2 / 2 + LN2 / 3) / 2 - LN2) / 2),  # k1 = −x: −13 ln2 / 24 = −0.3754547
    ("k2", ((LN2 ** 2 / 4 + LN2 ** 2 / 6) / 2 + LN2 ** 2 / 2) / 2),  # k2 = x²/2: 0.1701604
])
def test_kl_estimators_in_loss(estimator, kl):
    out = policy_loss(**hand_batch(), epsilon=0.2, beta=0.5, kl_estimator=estimator)
    close(out.kl, kl)
    close(out.loss, -(251 / 240 - 0.5 * kl))


def test_sequence_ratio_gspo():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.1, ratio_level="sequence")
    # s_i = exp(mean_t log ρ): row 0 √(1.5·0.9) = 1.161895 > 1.1, A > 0 → clipped to 1.1
    #                          row 1 ∛(0.5·1.1·1.3) = 0.894220 < 0.9, A < 0
    #                                → min(−0.8942, −0.9) = −0.9
    #                          row 2 1.05 (inside)                         → 2.1
    # J = ((1.1 − 0.9)/2 + 2.1)/2 = 1.1
    close(out.loss, -1.1)
    close(out.clip_high_frac, 2 / 6)  # both tokens of row 0
    close(out.clip_low_frac, 3 / 6)  # all three tokens of row 1
    close(out.ratio_mean, (2 * math.sqrt(1.35) + 3 * 0.715 ** (1 / 3) + 1.05) / 6)
    out.loss.backward()
    # clipped rows get no gradient; row 2: −s·A/|o|/G/num_groups = −1.05·2/1/1/2
    close(b["logp"].grad, [[0, 0, 0], [0, 0, 0], [-1.05, 0, 0]])


# ---- properties -----------------------------------------------------------------------------

def test_ratio_one_with_nonzero_gradient():
    """μ = 1: old_logp = logp.detach(), so ρ ≡ 1, yet ∂loss/∂logp_{i,t} = −A_i/|o_i|/G_g/#groups."""
    b = hand_batch()
    b["old_logp"] = b["logp"].detach()
    out = policy_loss(**b, epsilon=0.2)
    close(out.ratio_mean, 1.0)
    close(out.loss, -((1 - 1) / 2 + 2) / 2)  # group 0: (A=1 + A=−1)/2 = 0; group 1: 2
    out.loss.backward()
    close(b["logp"].grad, [[-1 / 2 / 2 / 2, -1 / 2 / 2 / 2, 0],
                           [1 / 3 / 2 / 2, 1 / 3 / 2 / 2, 1 / 3 / 2 / 2],
                           [-2 / 1 / 1 / 2, 0, 0]])


def test_zero_advantage_gradient_only_from_kl():
    b = hand_batch()
    b["advantages"] = torch.zeros(3, dtype=F64)
    out = policy_loss(**b, epsilon=0.2, beta=0.1)
    assert out.surrogate.item() == 0.0
    (grad,) = torch.autograd.grad(out.loss, b["logp"])
    valid = b["mask"].bool()
    kl_only = 0.1 * grpo_mean(kl_k3(torch.where(valid, b["logp"], 0.0),
                                    torch.where(valid, b["ref_logp"], 0.0)), valid, b["group_ids"])
    (expected,) = torch.autograd.grad(kl_only, b["logp"])
    torch.testing.assert_close(grad, expected)
    assert grad.abs().sum() > 0
    # and without KL nothing moves
    (grad0,) = torch.autograd.grad(policy_loss(**b, epsilon=0.2).loss, b["logp"])
    assert torch.equal(grad0, torch.zeros_like(grad0))


@pytest.mark.parametrize("ratio_level", sorted(RATIOS))
@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_padding_does_not_count(ratio_level, aggregation):
    """Appending padding columns with garbage log-probs changes neither the loss nor the grads."""
    gen = torch.Generator().manual_seed(1)
    n, t = 4, 3
    logp = (-torch.rand(n, t, generator=gen, dtype=F64)).requires_grad_(True)
    old = logp.detach() + 0.2 * torch.randn(n, t, generator=gen, dtype=F64)
    ref = logp.detach() + 0.2 * torch.randn(n, t, generator=gen, dtype=F64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=F64)
    kw = dict(advantages=torch.tensor([1.0, -0.5, 2.0, -1.0], dtype=F64),
              group_ids=torch.tensor([0, 0, 1, 1]),
              epsilon=0.2, beta=0.04, ratio_level=ratio_level, aggregation=aggregation,
              max_completion_length=5)
    short = policy_loss(logp, old, ref, mask=mask, **kw)
    (g_short,) = torch.autograd.grad(short.loss, logp)

    garbage = torch.tensor([[INF, -INF], [NAN, 1e4], [-1e4, 3.0], [0.5, NAN]], dtype=F64)
    logp_pad = torch.cat([logp.detach(), garbage], dim=1).requires_grad_(True)
    old_pad = torch.cat([old, -garbage], dim=1)
    ref_pad = torch.cat([ref, garbage * 2], dim=1)
    mask_pad = torch.cat([mask, torch.zeros(n, 2, dtype=F64)], dim=1)
    long = policy_loss(logp_pad, old_pad, ref_pad, mask=mask_pad, **kw)
    (g_long,) = torch.autograd.grad(long.loss, logp_pad)
    torch.testing.assert_close(long.loss, short.loss)
    torch.testing.assert_close(g_long[:, :t], g_short)
    assert torch.equal(g_long[:, t:], torch.zeros(n, 2, dtype=F64))
    for field in ("surrogate", "kl", "clip_low_frac", "clip_high_frac", "ratio_mean"):
        torch.testing.assert_close(getattr(long, field), getattr(short, field))


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_fully_masked_rows_do_not_count(aggregation):
    """...in the groups (grpo) or the tokens (token_mean); Dr. GRPO's constant normaliser
    counts every row, masked or not (rows × max length), so there they scale the loss by
    3/5 (issue 13: it used to count only rows with a valid token)."""
    b = hand_batch()
    kw = dict(epsilon=0.2, beta=0.1, aggregation=aggregation, max_completion_length=4)
    ref_out = policy_loss(**b, **kw)
    # add a masked-out row to group 4 (it must not change G) and a masked-out group 5
    extra = 2
    big = dict(
        logp=torch.cat([b["logp"].detach(), torch.full((extra, 3), NAN, dtype=F64)])
        .requires_grad_(True),
        old_logp=torch.cat([b["old_logp"], torch.full((extra, 3), 7.0, dtype=F64)]),
        ref_logp=torch.cat([b["ref_logp"], torch.full((extra, 3), INF, dtype=F64)]),
        advantages=torch.tensor([1.0, -1.0, 2.0, 5.0, 5.0], dtype=F64),
        mask=torch.cat([b["mask"], torch.zeros(extra, 3, dtype=F64)]),
        group_ids=torch.tensor([4, 4, 9, 4, 5]),
    )
    out = policy_loss(**big, **kw)
    scale = 3 / 5 if aggregation == "constant" else 1.0
    torch.testing.assert_close(out.loss, ref_out.loss * scale)
    torch.testing.assert_close(out.clip_high_frac, ref_out.clip_high_frac)
    (grad,) = torch.autograd.grad(out.loss, big["logp"])
    (ref_grad,) = torch.autograd.grad(ref_out.loss, b["logp"])
    torch.testing.assert_close(grad[:3], ref_grad * scale)
    assert torch.equal(grad[3:], torch.zeros(extra, 3, dtype=F64))


@pytest.mark.parametrize("ratio_level", sorted(RATIOS))
@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_all_rows_masked_gives_zero_not_nan(ratio_level, aggregation):
    logp = torch.full((2, 3), NAN, dtype=F64, requires_grad=True)
    out = policy_loss(logp, torch.zeros(2, 3, dtype=F64), torch.zeros(2, 3, dtype=F64),
                      torch.ones(2, dtype=F64), torch.zeros(2, 3), torch.tensor([0, 0]),
                      epsilon=0.2, beta=0.1, ratio_level=ratio_level, aggregation=aggregation,
                      max_completion_length=3)
    out.loss.backward()
    for value in (out.loss, out.surrogate, out.kl, out.clip_low_frac, out.clip_high_frac,
                  out.ratio_mean):
        assert value.item() == 0.0
    assert torch.equal(logp.grad, torch.zeros(2, 3, dtype=F64))


# ---- against the formula written out literally ----------------------------------------------

def literal_loss(logp, old, ref, adv, mask, group_ids, eps_low, eps_high, beta, estimator,
                 ratio_level, aggregation, max_len):
    """The objective with Python loops over i and t, one scalar at a time.

    The sequence ratio is GSPO's own definition with its full gradient,
    s_i = exp((1/|o_i|) Σ_t (logp − old)), not the GSPO-token rewrite policy_loss uses.
    """
    n, t_max = logp.shape
    terms = {}  # i -> list of per-token (surrogate − β D) for valid tokens
    for i in range(n):
        tokens = [t for t in range(t_max) if mask[i, t] != 0]
        if not tokens:
            continue
        if ratio_level == "sequence":
            s = torch.exp(sum(logp[i, t] - old[i, t] for t in tokens) / len(tokens))
        terms[i] = []
        for t in tokens:
            rho = torch.exp(logp[i, t] - old[i, t]) if ratio_level == "token" else s
            surrogate = min(rho * adv[i], torch.clamp(rho, 1 - eps_low, 1 + eps_high) * adv[i])
            x = ref[i, t] - logp[i, t]
            k3 = torch.exp(x) - x - 1
            # k3_is: DeepSeek-V3.2's (π_θ/π_old) k3, the token ratio whatever ratio_level
            d = {"k1": -x, "k2": 0.5 * x * x, "k3": k3,
                 "k3_is": torch.exp(logp[i, t] - old[i, t]) * k3}[estimator]
            terms[i].append(surrogate - beta * d)
    if aggregation == "grpo":
        groups = {}
        for i, ts in terms.items():
            groups.setdefault(int(group_ids[i]), []).append(sum(ts) / len(ts))
        j = sum(sum(seqs) / len(seqs) for seqs in groups.values()) / len(groups)
    elif aggregation == "token_mean":
        j = sum(sum(ts) for ts in terms.values()) / sum(len(ts) for ts in terms.values())
    else:  # Dr. GRPO: every row counts, masked ones included (TRL's size(0) · max length)
        j = sum(sum(ts) for ts in terms.values()) / (n * max_len)
    return -j


def random_batch(seed):
    gen = torch.Generator().manual_seed(seed)
    n, t = 7, 6
    logp = (-2 * torch.rand(n, t, generator=gen, dtype=F64)).requires_grad_(True)
    # log ρ = per-row offset + N(0, 0.3²) per token. The offsets (with the advantages' signs)
    # put rows 0 and 5 above 1 + ε_high with A > 0 and rows 1 and 3 below 1 − ε with A < 0,
    # whole sequences as well as most of their tokens; rows 2 and 6 sit mostly inside.
    offset = torch.tensor([0.6, -0.6, 0.0, -0.6, 0.0, 0.6, 0.1], dtype=F64).unsqueeze(1)
    old = logp.detach() - offset - 0.3 * torch.randn(n, t, generator=gen, dtype=F64)
    ref = logp.detach() + 0.5 * torch.randn(n, t, generator=gen, dtype=F64)
    lengths = torch.tensor([6, 3, 1, 5, 0, 4, 2])  # row 4 fully masked
    mask = (torch.arange(t) < lengths.unsqueeze(1)).to(F64)
    sign = torch.tensor([1, -1, 1, -1, 1, 1, -1], dtype=F64)
    adv = sign * (0.5 + torch.rand(n, generator=gen, dtype=F64))
    group_ids = torch.tensor([2, 2, 2, 0, 0, 5, 5])  # uneven groups
    return logp, old, ref, adv, mask, group_ids


@pytest.mark.parametrize("estimator, ratio_level, aggregation", list(itertools.product(
    sorted(KL_ESTIMATORS), sorted(RATIOS), sorted(AGGREGATIONS))))
@pytest.mark.parametrize("beta", [0.0, 0.3])
def test_matches_literal_loop(estimator, ratio_level, aggregation, beta):
    for seed in range(2):
        logp, old, ref, adv, mask, group_ids = random_batch(seed)
        eps_low, eps_high = 0.2, 0.28
        out = policy_loss(logp, old, ref, adv, mask, group_ids, epsilon=eps_low,
                          epsilon_high=eps_high, beta=beta, kl_estimator=estimator,
                          ratio_level=ratio_level, aggregation=aggregation,
                          max_completion_length=8)
        (grad,) = torch.autograd.grad(out.loss, logp)
        expected = literal_loss(logp, old, ref, adv, mask, group_ids, eps_low, eps_high, beta,
                                estimator, ratio_level, aggregation, 8)
        (expected_grad,) = torch.autograd.grad(expected, logp)
        torch.testing.assert_close(out.loss, expected)
        torch.testing.assert_close(grad, expected_grad)
        assert grad.abs().sum() > 0


@pytest.mark.parametrize("ratio_level", sorted(RATIOS))
@pytest.mark.parametrize("seed", range(2))
def test_random_batch_exercises_clipping(seed, ratio_level):
    """Guard for the test above: its inputs must actually clip, or the min/clip path is untested."""
    logp, old, ref, adv, mask, group_ids = random_batch(seed)
    out = policy_loss(logp, old, ref, adv, mask, group_ids, epsilon=0.2, epsilon_high=0.28,
                      ratio_level=ratio_level)
    assert out.clip_low_frac > 0 and out.clip_high_frac > 0
    assert out.clip_low_frac + out.clip_high_frac < 1


# ---- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("option, valid", [("kl_estimator", "k1, k2, k3, k3_is"),
                                           ("ratio_level", "sequence, token"),
                                           ("aggregation", "constant, grpo, token_mean")])
def test_unknown_variant_lists_valid_values(option, valid):
    with pytest.raises(ValueError, match=f"unknown {option} 'nope'; valid values: {valid}"):
        policy_loss(**hand_batch(), epsilon=0.2, **{option: "nope"})


def test_constant_needs_max_completion_length():
    with pytest.raises(ValueError, match="max_completion_length"):
        policy_loss(**hand_batch(), epsilon=0.2, aggregation="constant")


def test_beta_needs_reference():
    b = hand_batch()
    b["ref_logp"] = None
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(**b, epsilon=0.2, beta=0.04)
    out = policy_loss(**b, epsilon=0.2)  # β = 0: no reference needed, KL reported as 0
    assert out.kl.item() == 0.0
    close(out.loss, -251 / 240)


def test_negative_epsilon_rejected():
    with pytest.raises(ValueError, match="epsilon"):
        policy_loss(**hand_batch(), epsilon=0.2, epsilon_high=-0.1)
