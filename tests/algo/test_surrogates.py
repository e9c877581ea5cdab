"""The surrogate table (algo.policy_loss) against hand-computed values and gradients, and
against each paper's formula written out directly."""

import math

import pytest
import torch

from r1kit.algo import policy_loss
from r1kit.algo.surrogates import SURROGATES, SurrogateOptions
from tests.algo.test_policy_loss import F64, INF, NAN, close, hand_batch, random_batch

LN = math.log
#: hand_batch's aggregation weights (grpo): row 0 1/(2·2·2), row 1 1/(3·2·2), row 2 1/(1·1·2)
W = [1 / 8, 1 / 12, 1 / 2]


def grad_of(out, logp):
    (grad,) = torch.autograd.grad(out.loss, logp)
    return grad


def test_ppo_clip_is_the_default_bit_for_bit():
    b = hand_batch()
    default = policy_loss(**b, epsilon=0.2, epsilon_high=0.28, beta=0.1)
    named = policy_loss(**b, epsilon=0.2, epsilon_high=0.28, beta=0.1, surrogate="ppo_clip")
    assert torch.equal(default.loss, named.loss)
    assert torch.equal(grad_of(default, b["logp"]), grad_of(named, b["logp"]))


# ---- dual clip ------------------------------------------------------------------------------

def test_dual_clip_hand_values():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.2, surrogate="dual_clip",
                      surrogate_options=SurrogateOptions(dual_clip_c=1.25))
    # row 1 (A = −1) token 2: ρ = 1.3 > c: PPO's −1.3 becomes max(−1.3, −1.25) = −1.25
    #   row means 1.05, (−0.8 − 1.1 − 1.25)/3 = −1.05, 2.1 → J = ((1.05 − 1.05)/2 + 2.1)/2
    close(out.loss, -1.05)
    close(out.clip_high_frac, 2 / 6)  # row 0 token 0 (PPO) and row 1 token 2 (dual)
    close(out.clip_low_frac, 1 / 6)
    # gradient: −ρ A w for unclipped tokens; 0 for both PPO-clipped and dual-clipped ones
    close(grad_of(out, b["logp"]), [[0, -0.9 * W[0], 0],
                                    [0, 1.1 * W[1], 0],
                                    [-1.05 * 2 * W[2], 0, 0]])


def test_dual_clip_default_c_leaves_this_batch_alone():
    b = hand_batch()  # every ρ < 3
    close(policy_loss(**b, epsilon=0.2, surrogate="dual_clip").loss, -251 / 240)


# ---- CISPO ----------------------------------------------------------------------------------

def test_cispo_hand_values_and_gradient():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.2, surrogate="cispo")
    # weights min(ρ, 1.2): row 0 [1.2, 0.9], row 1 [0.5, 1.1, 1.2], row 2 [1.05]
    # values ŵA: row means 1.05, −2.8/3, 2.1 → J = ((1.05 − 2.8/3)/2 + 2.1)/2 = 259/240
    close(out.loss, -259 / 240)
    close(out.surrogate, 259 / 240)
    close(out.clip_high_frac, 2 / 6)  # ρ = 1.5 and ρ = 1.3 (either sign of A)
    close(out.clip_low_frac, 0.0)
    # every token keeps a gradient: ∂(−J)/∂logp = −ŵ A w
    close(grad_of(out, b["logp"]), [[-1.2 * W[0], -0.9 * W[0], 0],
                                    [0.5 * W[1], 1.1 * W[1], 1.2 * W[1]],
                                    [-1.05 * 2 * W[2], 0, 0]])


def test_cispo_two_sided_and_absolute_cap():
    b = hand_batch()
    two = policy_loss(**b, epsilon=0.2, surrogate="cispo",
                      surrogate_options=SurrogateOptions(cispo_clip_low=True))
    # row 1 token 0's weight rises to 0.8: row 1 mean −3.1/3
    close(two.loss, -((1.05 - 3.1 / 3) / 2 + 2.1) / 2)
    close(two.clip_low_frac, 1 / 6)
    capped = policy_loss(**b, epsilon=0.2, surrogate="cispo",
                         surrogate_options=SurrogateOptions(cispo_weight_max=5.0))
    # nothing reaches 5: the plain ratios, (1.2 − 2.9/3)/2 …
    close(capped.loss, -((1.2 - 2.9 / 3) / 2 + 2.1) / 2)
    close(capped.clip_high_frac, 0.0)


def test_cispo_gradient_matches_paper_form():
    """MiniMax-M1's loss −sg(clip(ρ)) A log π_θ, aggregated alike, has the same gradient."""
    logp, old, ref, adv, mask, group_ids = random_batch(0)
    out = policy_loss(logp, old, ref, adv, mask, group_ids, epsilon=0.2, epsilon_high=0.28,
                      surrogate="cispo", aggregation="token_mean")
    valid = mask.bool()
    rho = torch.exp(torch.where(valid, logp - old, 0.0)).detach()
    paper = -(torch.where(valid, rho.clamp(max=1.28) * adv[:, None] * logp, 0.0).sum()
              / valid.sum())
    (expected,) = torch.autograd.grad(paper, logp)
    torch.testing.assert_close(grad_of(out, logp), expected)


# ---- SAPO -----------------------------------------------------------------------------------

def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_sapo_hand_values_and_gradient():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.2, surrogate="sapo")
    rows = [([1.5, 0.9], 1.0), ([0.5, 1.1, 1.3], -1.0), ([1.05], 2.0)]
    gate = lambda r, tau: sigmoid(tau * (r - 1)) * 4 / tau  # noqa: E731
    means, grads = [], []
    for (ratios, a), w in zip(rows, W):
        tau = 1.0 if a > 0 else 1.05
        means.append(sum(gate(r, tau) * a for r in ratios) / len(ratios))
        # ∂f(ρ)/∂logp = 4σ(1 − σ) ρ
        grads.append([-4 * sigmoid(tau * (r - 1)) * (1 - sigmoid(tau * (r - 1))) * r * a * w
                      for r in ratios] + [0.0] * (3 - len(ratios)))
    close(out.loss, -((means[0] + means[1]) / 2 + means[2]) / 2)
    close(grad_of(out, b["logp"]), grads)
    # on-policy (ρ = 1) the gate's gradient weight is exactly 1: the plain policy gradient
    b["old_logp"] = b["logp"].detach()
    on = policy_loss(**b, epsilon=0.2, surrogate="sapo")
    off = policy_loss(**b, epsilon=0.2)
    torch.testing.assert_close(grad_of(on, b["logp"]), grad_of(off, b["logp"]))


def test_sapo_damped_fractions():
    b = hand_batch()
    # 4σ(1 − σ) < ½ needs |τ(ρ − 1)| > 1.7627: none here …
    out = policy_loss(**b, epsilon=0.2, surrogate="sapo")
    close(out.clip_low_frac + out.clip_high_frac, 0.0)
    # … but with τ = 10 ρ = 1.5, 1.3 (above) and 0.5 (below) are damped
    out = policy_loss(**b, epsilon=0.2, surrogate="sapo",
                      surrogate_options=SurrogateOptions(sapo_tau_pos=10, sapo_tau_neg=10))
    close(out.clip_high_frac, 2 / 6)
    close(out.clip_low_frac, 1 / 6)


# ---- GMPO -----------------------------------------------------------------------------------

def test_gmpo_hand_values_and_gradient():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.4, surrogate="gmpo")
    # row 0 (A > 0): log ρ = [0.405, −0.105]; the first is clipped to 0.4
    g0 = math.exp((0.4 + LN(0.9)) / 2)
    # row 1 (A < 0): log ρ = [−0.693, 0.095, 0.262]; the first is clipped to −0.4
    g1 = math.exp((-0.4 + LN(1.1) + LN(1.3)) / 3)
    close(out.loss, -((g0 - g1) / 2 + 2 * 1.05) / 2)
    close(out.clip_high_frac, 1 / 6)
    close(out.clip_low_frac, 1 / 6)
    # ratio_mean: the unclipped geometric mean on every token (as GSPO's ratio)
    close(out.ratio_mean, (2 * math.sqrt(1.35) + 3 * 0.715 ** (1 / 3) + 1.05) / 6)
    # ∂(A g)/∂logp_t = A g / |o| on unclipped tokens; a sequence weighs 1/(G K)
    close(grad_of(out, b["logp"]), [[0, -g0 / 2 / 4, 0],
                                    [0, g1 / 3 / 4, g1 / 3 / 4],
                                    [-2 * 1.05 / 2, 0, 0]])


def test_gmpo_matches_paper_formula():
    """(1/K) Σ_g (1/G) Σ_i A_i Π_t clip_sgn(ρ_t)^{1/|o_i|}, with its gradient, on random rows."""
    logp, old, ref, adv, mask, group_ids = random_batch(1)
    out = policy_loss(logp, old, ref, adv, mask, group_ids, epsilon=0.3, epsilon_high=0.35,
                      surrogate="gmpo")
    groups = {}
    for i in range(len(adv)):
        tokens = [t for t in range(mask.size(1)) if mask[i, t]]
        if not tokens:
            continue
        product = 1.0
        for t in tokens:
            rho = torch.exp(logp[i, t] - old[i, t])
            clipped = rho.clamp(math.exp(-0.3), math.exp(0.35))
            # PPO's pessimism in ratio space: min for A > 0, max for A < 0
            product = product * (torch.minimum(rho, clipped) if adv[i] > 0
                                 else torch.maximum(rho, clipped))
        groups.setdefault(int(group_ids[i]), []).append(adv[i] * product ** (1 / len(tokens)))
    expected = -sum(sum(v) / len(v) for v in groups.values()) / len(groups)
    (expected_grad,) = torch.autograd.grad(expected, logp)
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(grad_of(out, logp), expected_grad)


def test_gmpo_refuses_sequence_ratio_level():
    with pytest.raises(ValueError, match="ratio_level='token'"):
        policy_loss(**hand_batch(), epsilon=0.2, surrogate="gmpo", ratio_level="sequence")


# ---- Clip-Cov / KL-Cov ----------------------------------------------------------------------
# hand_batch's centred covariances (A − Ā)(logp − logp̄), Ā = 1/6, logp̄ = −1.15:
#   row 0: [0.125, −0.708]   row 1: [−0.758, 0.408, −0.525]   row 2: [−0.092]

def test_clip_cov_detaches_the_covarying_unclipped_tokens():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.2, surrogate="clip_cov",
                      surrogate_options=SurrogateOptions(clip_cov_ratio=1.0, clip_cov_lb=0.1))
    # candidates in (0.1, 5): row 0 token 0 (PPO-clipped already: excluded), row 1 token 1
    close(out.loss, -251 / 240)  # the value is PPO's
    close(out.cov_frac, 1 / 6)
    ppo = grad_of(policy_loss(**b, epsilon=0.2), b["logp"])
    ppo[1, 1] = 0.0
    close(grad_of(out, b["logp"]), ppo)


def test_clip_cov_draws_its_quota_among_the_candidates():
    b = hand_batch()
    opts = SurrogateOptions(clip_cov_ratio=1e-4, clip_cov_lb=-1.0)  # quota max(1, 0) = 1
    candidates = {(0, 1), (1, 1), (1, 2), (2, 0)}  # unclipped, covariance in (−1, 5)
    torch.manual_seed(0)
    for _ in range(5):
        out = policy_loss(**b, epsilon=0.2, surrogate="clip_cov", surrogate_options=opts)
        close(out.cov_frac, 1 / 6)
        grad, ppo = grad_of(out, b["logp"]), grad_of(policy_loss(**b, epsilon=0.2), b["logp"])
        changed = {tuple(ix) for ix in (grad != ppo).nonzero().tolist()}
        assert len(changed) == 1 and changed <= candidates


def test_kl_cov_penalises_the_top_covariance_tokens():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.2, surrogate="kl_cov",
                      surrogate_options=SurrogateOptions(kl_cov_ratio=0.2, kl_cov_coef=1.0))
    # no clipping; quota max(1, ⌊0.2·6⌋) = 1: row 1 token 1 (0.408) gets −|log 1.1|
    row1 = (-0.5 - 1.1 - LN(1.1) - 1.3) / 3
    close(out.loss, -((1.2 + row1) / 2 + 2.1) / 2)
    close(out.cov_frac, 1 / 6)
    close(out.clip_low_frac + out.clip_high_frac, 0.0)
    # ∂(ρA − |l|)/∂logp = ρA − sgn(l) at the penalised token, ρA elsewhere
    close(grad_of(out, b["logp"]), [[-1.5 * W[0], -0.9 * W[0], 0],
                                    [0.5 * W[1], (1.1 + 1.0) * W[1], 1.3 * W[1]],
                                    [-1.05 * 2 * W[2], 0, 0]])


# ---- every surrogate: padding, empty batches, micro-batches ---------------------------------

@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_padding_and_masked_rows_do_not_count(surrogate):
    logp, old, ref, adv, mask, group_ids = random_batch(0)
    kw = dict(epsilon=0.2, epsilon_high=0.28, beta=0.04, surrogate=surrogate,
              surrogate_options=SurrogateOptions(clip_cov_ratio=1.0, kl_cov_ratio=0.1))
    short = policy_loss(logp, old, ref, adv, mask, group_ids, **kw)
    g_short = grad_of(short, logp)
    garbage = torch.tensor([[INF, -INF], [NAN, 1e4], [-1e4, 3.0], [0.5, NAN], [NAN, NAN],
                            [INF, INF], [-INF, 0.0]], dtype=F64)
    logp_pad = torch.cat([logp.detach(), garbage], 1).requires_grad_(True)
    pad = lambda x, g: torch.cat([x, g], 1)  # noqa: E731
    long = policy_loss(logp_pad, pad(old, -garbage), pad(ref, garbage), adv,
                       pad(mask, torch.zeros(7, 2, dtype=F64)), group_ids, **kw)
    g_long = grad_of(long, logp_pad)
    torch.testing.assert_close(long.loss, short.loss)
    torch.testing.assert_close(g_long[:, :6], g_short)
    assert torch.equal(g_long[:, 6:], torch.zeros(7, 2, dtype=F64))


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_all_rows_masked_gives_zero_not_nan(surrogate):
    logp = torch.full((2, 3), NAN, dtype=F64, requires_grad=True)
    out = policy_loss(logp, torch.zeros(2, 3, dtype=F64), torch.zeros(2, 3, dtype=F64),
                      torch.tensor([1.0, -1.0], dtype=F64), torch.zeros(2, 3),
                      torch.tensor([0, 0]), epsilon=0.2, beta=0.1, surrogate=surrogate)
    out.loss.backward()
    for value in (out.loss, out.surrogate, out.clip_low_frac, out.clip_high_frac, out.cov_frac):
        assert value.item() == 0.0
    assert torch.equal(logp.grad, torch.zeros(2, 3, dtype=F64))


SPLIT_EXACT = sorted(set(SURROGATES) - {"clip_cov", "kl_cov"})


@pytest.mark.parametrize("aggregation", ["grpo", "token_mean", "constant"])
@pytest.mark.parametrize("surrogate", SPLIT_EXACT)
def test_micro_batches_sum_to_the_batch(surrogate, aggregation):
    """Rows split into micro-batches (a group across two of them), each with the whole batch's
    aggregation weights, sum to the batch's loss and gradient, with every option on."""
    from r1kit.algo.aggregation import AGGREGATIONS

    logp, old, ref, adv, mask, group_ids = random_batch(0)
    gen = torch.Generator().manual_seed(3)
    token_weights = 0.5 + torch.rand(mask.shape, generator=gen, dtype=F64)
    entropy = lambda rows: logp[rows].detach().neg() * (1 + logp[rows])  # noqa: E731
    every = list(range(len(adv)))
    kw = dict(epsilon=0.2, epsilon_high=0.28, beta=0.1, kl_estimator="k3_is",
              surrogate=surrogate, aggregation=aggregation, max_completion_length=8,
              entropy_coef=0.01, off_policy_mask_delta=0.3)
    full = policy_loss(logp, old, ref, adv, mask, group_ids, token_weights=token_weights,
                       entropy=entropy(every), **kw)
    g_full = grad_of(full, logp)
    weights = AGGREGATIONS[aggregation].weights(mask.bool(), group_ids, 8, dtype=F64)
    total, g_total = 0.0, torch.zeros_like(logp)
    for rows in ([0, 3, 6], [1, 5], [2, 4]):
        part = policy_loss(logp[rows], old[rows], ref[rows], adv[rows], mask[rows],
                           group_ids[rows], token_weights=token_weights[rows],
                           entropy=entropy(rows), aggregation_weights=weights[rows], **kw)
        total = total + part.loss
        g_total += grad_of(part, logp)
    torch.testing.assert_close(total, full.loss)
    torch.testing.assert_close(g_total, g_full)
    assert g_full.abs().sum() > 0


@pytest.mark.parametrize("surrogate", ["clip_cov", "kl_cov"])
def test_cov_selection_is_per_micro_batch(surrogate):
    """Clip-Cov/KL-Cov centre the covariance and count their quota over the rows they are
    given, so a split selects within each micro-batch (verl does the same, per micro-batch):
    one micro-batch holding every row is the full batch exactly; a split selects
    max(1, ⌊r·n⌋) tokens of each part (Clip-Cov: at most that many, among its candidates)."""
    from r1kit.algo.aggregation import grpo_mean

    logp, old, ref, adv, mask, group_ids = random_batch(0)
    opts = SurrogateOptions(clip_cov_ratio=0.2, clip_cov_lb=-10, clip_cov_ub=10,
                            kl_cov_ratio=0.2)
    kw = dict(epsilon=0.2, epsilon_high=0.28, surrogate=surrogate, surrogate_options=opts)
    torch.manual_seed(0)
    full = policy_loss(logp, old, ref, adv, mask, group_ids, **kw)
    weights = grpo_mean.weights(mask.bool(), group_ids, dtype=F64)
    torch.manual_seed(0)
    whole = policy_loss(logp, old, ref, adv, mask, group_ids, aggregation_weights=weights, **kw)
    torch.testing.assert_close(whole.loss, full.loss)
    for rows in ([0, 3, 6], [1, 2, 4, 5]):
        n = int(mask[rows].sum())
        part = policy_loss(logp[rows], old[rows], ref[rows], adv[rows], mask[rows],
                           group_ids[rows], aggregation_weights=weights[rows], **kw)
        selected, quota = round(float(part.cov_frac) * n), max(1, int(0.2 * n))
        assert selected == quota if surrogate == "kl_cov" else 1 <= selected <= quota


def test_unknown_surrogate_lists_valid_values():
    with pytest.raises(ValueError, match="unknown policy_loss 'nope'; valid values: cispo, "
                                         "clip_cov, dual_clip, gmpo, kl_cov, ppo_clip, sapo"):
        policy_loss(**hand_batch(), epsilon=0.2, surrogate="nope")
