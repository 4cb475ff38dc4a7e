#!/usr/bin/python3
"""bench_train.py: the PyTorch baseline of bench_train.sh.

One DPO step as train-step runs it: 8 pairs, a 32-token prompt and
128-token responses, so 16 sequences of 160 tokens, on the 4-layer
dim-256 model (4 heads, 2 kv heads, ffn 688, vocab 4096); forward,
per-sequence response log-prob sums, the sigmoid DPO loss against fixed
reference sums, backward, global-norm clipping and an AdamW update.
Eager fp32 on 2 threads.  The network is bench/bench_model.py's,
imported with its batch shape set to this one.

    bench_train.py [STEPS]    prints key=value lines
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_model as bm  # noqa: E402

PAIRS, PROMPT, RESP = 8, 32, 128


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.set_num_threads(2)
    torch.manual_seed(0)
    bm.B, bm.T = 2 * PAIRS, PROMPT + RESP
    B, T, HD = bm.B, bm.T, bm.HD
    p = bm.build()
    params = [p["embed"], p["norm"], p["out"]] + \
        [t for l in p["layers"] for t in l.values()]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    tok = torch.randint(3, bm.V, (B, T))
    inv = 1.0 / 10000 ** (torch.arange(0, HD, 2).float() / HD)
    ang = torch.arange(T).float()[:, None] * inv
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
    ref = torch.full((B,), -1000.0)
    beta = 0.1

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = bm.forward(p, tok, cos, sin, mask)         # (B,T,V)
        # positions PROMPT-1 .. T-2 predict the response tokens
        lp = logits[:, PROMPT - 1:-1].log_softmax(-1).gather(
            -1, tok[:, PROMPT:, None]).squeeze(-1).sum(-1)  # (B,)
        r = lp - ref
        h = r[0::2] - r[1::2]                               # chosen - rejected
        loss = -torch.nn.functional.logsigmoid(beta * h).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return time.perf_counter() - t0

    step()
    times = [step() for _ in range(steps)]
    best = min(times)
    print("torch_threads=%d" % torch.get_num_threads())
    print("torch_dpo_step_ms=%.1f" % (best * 1e3))
    print("torch_dpo_tokens_per_s=%.0f" % (B * T / best))
    print("torch_dpo_tokens_per_s_mean=%.0f" % (B * T * steps / sum(times)))


if __name__ == "__main__":
    main()
