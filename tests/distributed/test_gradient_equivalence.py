"""Data parallelism computes the single-process objective: with fixed completions, the gradient
that DDP averages over 2 gloo ranks equals the gradient of one process on the union of their
rows, through the trainers' own loss paths (``accumulate_gradients`` for GRPO,
``accumulate_sft_gradients`` for SFT: micro-batches, ``no_sync``, per-rank loss scaling) and
Lightning's manual-optimisation backward (``prepare_for_backward``); and the loss terms the
ranks report average to the single process's (what the logged metrics are)."""

from __future__ import annotations

import os
import socket
import sys
import traceback
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
GROUPS, G = 4, 4
#: token budgets of a micro-batch (rows × longest row): None splits by rows only (G rows, so
#: ranks run different numbers of micro-batches); 40 (rows here hold 4-17 tokens) packs rows
#: longest first, so groups span micro-batches and one micro-batch mixes several groups
BUDGETS = (None, 40)
#: (aggregation, groups on rank 0, groups on rank 1, token budget); (4, 0) leaves rank 1 with
#: nothing to learn
CASES = [(aggregation, *split, budget) for budget in BUDGETS
         for aggregation in ("grpo", "token_mean", "constant")
         for split in ((2, 2), (3, 1))] + [("token_mean", 4, 0, None), ("grpo", 4, 0, 40)]


def _algo(aggregation, budget):
    from r1kit.config.schema import AlgoConfig

    return AlgoConfig(epsilon=0.2, epsilon_high=0.28, beta=0.04, kl_estimator="k3",
                      ratio_level="token", aggregation=aggregation, micro_batch_size=G,
                      micro_batch_tokens=budget)


def _model():
    from r1kit.models.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size=64, num_layers=2, num_heads=2,
                        intermediate_size=128, max_position_embeddings=64, seed=0)
    return tokenizer, model.train()


def _fixed_batch(tokenizer, model):
    """4 groups × 4 completions of varied lengths (one masked out by a filter), fixed
    advantages, and π_old / π_ref log-probs off the current policy so ratios clip."""
    from r1kit.algo.logprobs import completion_logprobs, pack
    from r1kit.stages.grpo.batch import PolicyBatch

    gen = torch.Generator().manual_seed(0)
    vocab = len(tokenizer)
    prompts, completions = [], []
    for g in range(GROUPS):
        prompt = torch.randint(7, vocab, (3 + g,), generator=gen).tolist()
        for i in range(G):
            length = 1 + (5 * g + 3 * i) % 11
            prompts.append(prompt)
            completions.append(torch.randint(7, vocab, (length,), generator=gen).tolist())
    ids, attention, positions, mask = pack(prompts, completions, tokenizer.pad_token_id, "cpu")
    mask[5] = 0  # a completion a filter removed from the loss (loss_weights = 0)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, ids, attention, positions, mask)
    noise = lambda: 0.3 * torch.randn(logp.shape, generator=gen) * mask  # noqa: E731
    return PolicyBatch(ids, attention, positions, mask,
                       torch.arange(GROUPS).repeat_interleave(G),
                       torch.randn(GROUPS * G, generator=gen), old_logp=logp + noise(),
                       ref_logp=logp + noise())


def _rows(batch, groups):
    """The rows of ``groups``; None for no group (a rank with nothing to learn)."""
    if not groups:
        return None
    return batch.rows(torch.cat([torch.nonzero(batch.group_ids == g).flatten()
                                 for g in groups]))


def _grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


#: objects kept alive until the worker exits: a DDP reducer freed while gloo's threads still
#: release tensors deadlocks on the GIL, so workers leave through os._exit, destructors unrun
_KEEP = []


def _worker(rank: int, port: int, out_dir: str) -> None:
    status = 1
    try:
        _check(rank, port)
        status = 0
    except BaseException:
        Path(out_dir, f"rank{rank}.err").write_text(traceback.format_exc())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _check(rank: int, port: int) -> None:
    from lightning.pytorch.overrides.distributed import prepare_for_backward
    from torch.nn.parallel import DistributedDataParallel

    from r1kit.stages.module_common import Backprop
    from r1kit.stages.grpo.update import accumulate_gradients
    from r1kit.stages.sft.module import accumulate_sft_gradients

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # a rank that fails leaves the other waiting in a collective: time out instead of hanging
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    tokenizer, model = _model()
    batch = _fixed_batch(tokenizer, model)
    common = {"temperature": 1.0, "max_completion_length": 16}

    def single(aggregation, part, budget=None):  # one process, no DDP: the reference
        model.zero_grad(set_to_none=True)
        terms = accumulate_gradients(model, part, _algo(aggregation, budget), **common)
        return _grads(model), terms

    # the budget does split groups and mix them (what the case is there to test)
    from r1kit.stages.grpo.batch import micro_batches

    chunks = micro_batches(batch, torch.arange(len(batch)), _algo("grpo", 40))
    groups = [set(batch.group_ids[c].tolist()) for c in chunks]
    assert max(map(len, groups)) > 1
    assert any(len([g for g in groups if k in g]) > 1 for k in range(GROUPS))
    # the reference: the whole batch in one micro-batch
    expected = {case: single(case[0], batch, 10 ** 6) for case in CASES}
    sft = [batch.ids, batch.attention, batch.positions, batch.mask]
    model.zero_grad(set_to_none=True)
    accumulate_sft_gradients(model, *sft, 4)
    expected_sft = _grads(model)
    # what plain DDP averaging of per-rank losses would give (no global unit counts)
    naive_part = _rows(batch, range(2) if rank == 0 else range(2, 4))
    naive, _ = single("token_mean", naive_part)

    ddp = DistributedDataParallel(model)  # as Lightning wraps the module holding the policy
    _KEEP.append(ddp)

    def manual_backward(loss):  # what LightningModule.manual_backward does under DDP
        prepare_for_backward(ddp, loss)
        loss.backward()

    def sum_over_ranks(value):
        tensor = torch.tensor(float(value), dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor)

    backprop = Backprop(manual_backward, ddp.no_sync, sum_over_ranks, WORLD)
    for case in CASES:
        aggregation, first, second, budget = case
        mine = range(first) if rank == 0 else range(first, first + second)
        model.zero_grad(set_to_none=True)
        terms = accumulate_gradients(model, _rows(batch, mine), _algo(aggregation, budget),
                                     **common, backprop=backprop, device=torch.device("cpu"))
        grads, single_terms = expected[case]
        torch.testing.assert_close(_grads(model), grads, rtol=1e-4, atol=1e-6,
                                   msg=lambda m, case=case: f"{case} rank {rank}: {m}")
        # every rank reports every term, its share of the value over the union: their mean
        # over ranks (what reduce_metrics logs) is the single process's
        keys = sorted(single_terms)
        assert sorted(terms) == keys
        mean = torch.tensor([terms[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(mean)
        mean /= WORLD
        assert dict(zip(keys, mean.tolist())) == pytest.approx(single_terms, rel=1e-4,
                                                              abs=1e-6), (case, rank)
    # SFT: the token mean over the union, with ranks holding 10 and 6 rows (uneven tokens),
    # in micro-batches of 4 rows, or of a token budget
    rows = slice(0, 10) if rank == 0 else slice(10, None)
    for budget in BUDGETS:
        model.zero_grad(set_to_none=True)
        accumulate_sft_gradients(model, *(t[rows] for t in sft), 4, micro_batch_tokens=budget,
                                 backprop=backprop)
        torch.testing.assert_close(_grads(model), expected_sft, rtol=1e-4, atol=1e-6,
                                   msg=lambda m, budget=budget: f"sft {budget} rank {rank}: {m}")
    # the test can tell: averaging per-rank token means is not the global token mean
    averaged = [g.clone() for g in naive]
    for g in averaged:
        dist.all_reduce(g)
        g /= WORLD
    gap = max(float((a - e).abs().max()) for a, e in
              zip(averaged, expected[("token_mean", 2, 2, None)][0]))
    assert gap > 1e-4, gap
    dist.barrier()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_averaged_gradient_equals_single_process_gradient_on_the_union(tmp_path):
    try:
        mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    except mp.ProcessExitedException:
        errors = sorted(tmp_path.glob("rank*.err"))
        pytest.fail("\n".join(e.read_text() for e in errors) or "a worker died")
