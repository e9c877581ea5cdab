"""Log-probs + entropy of ``--tokens`` completion tokens through a 151,936-token output head:
the plain full-vocabulary computation vs ``r1kit.algo.head_logprobs`` at several chunk sizes.

    python benchmarks/bench_head_logprobs.py [--tokens 2048] [--chunks 64,128,256,512,1024]

Each configuration runs in a fresh process (its own peak RSS): forward with entropy, backward
into the hidden states and the head weight (Qwen2.5-0.5B's head: 151,936 × 896, float32),
``--repeats`` times; reported are the median seconds per forward+backward and the process's
peak RSS above what it held before the first pass (the weight, its gradient and the hidden
states are allocated before, so the increase is the passes' own working memory).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VOCAB, HIDDEN = 151936, 896


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(tokens: int, chunk: int, repeats: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    from r1kit.algo.head_logprobs import head_logprobs

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    hidden = torch.randn(tokens, HIDDEN, requires_grad=True)
    weight = (torch.randn(VOCAB, HIDDEN) * 0.02).requires_grad_()
    targets = torch.randint(0, VOCAB, (tokens,))
    upstream = torch.randn(tokens)
    hidden.grad, weight.grad = torch.zeros_like(hidden), torch.zeros_like(weight)
    before = _rss_mb()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        if chunk == 0:  # the plain path, as completion_logprobs computes it
            logp_all = F.log_softmax(F.linear(hidden, weight).float() / 0.7, dim=-1)
            logp = logp_all.gather(1, targets[:, None]).squeeze(1)
            with torch.no_grad():
                (-(logp_all.exp() * logp_all).sum(-1)).sum()
            del logp_all
        else:
            logp, _ = head_logprobs(hidden, weight, None, targets, temperature=0.7,
                                    chunk=chunk, with_entropy=True)
        (logp * upstream).sum().backward()
        del logp
        seconds.append(time.perf_counter() - start)
    return {"step_s": statistics.median(seconds), "extra_peak_mb": _rss_mb() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--chunks", default="64,128,256,512,1024")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    print(f"{args.tokens} tokens, vocabulary {VOCAB}, width {HIDDEN}, float32, temperature 0.7")
    print(f"{'path':<14} {'s / fwd+bwd':>12} {'extra peak RSS':>15}")
    for chunk in [0, *map(int, args.chunks.split(","))]:
        out = subprocess.run([sys.executable, __file__, "--child", str(args.tokens), str(chunk),
                              str(args.repeats), str(args.threads)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        name = "plain" if chunk == 0 else f"chunk {chunk}"
        print(f"{name:<14} {row['step_s']:>12.3f} {row['extra_peak_mb']:>13.0f}MB", flush=True)


if __name__ == "__main__":
    main()
