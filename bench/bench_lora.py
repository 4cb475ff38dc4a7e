#!/usr/bin/python3
"""bench_lora.py: the PyTorch baseline of bench_lora.sh.

One LoRA-DPO step as train-step runs it there: PAIRS pairs of a
PROMPT-token prompt and RESP-token responses, one pair per micro-batch
(the gradients accumulated), on a Qwen2 network of the shape given
(biases on q, k and v, tied embeddings, GQA, SwiGLU), fp32 and eager; a
hand-written LoRA on every linear projection, y = x W^T + b +
(alpha/r) (x A^T) B^T, the base frozen (requires_grad False), A and B
trained; response log-prob sums, the sigmoid DPO loss against fixed
reference sums, backward, global-norm clipping and AdamW over the
adapters.  The weights are random: speed does not depend on them.

    bench_lora.py DIM LAYERS HEADS KV_HEADS FFN VOCAB [STEPS] [THREADS]

prints key=value lines: the fastest step's tokens/s and seconds.
"""
import sys
import time

import torch

PAIRS, PROMPT, RESP = 4, 256, 256
R, ALPHA = 16, 32


def lora_pair(o, k):
    a = (torch.rand(R, k) * 2 - 1) / k ** 0.5
    b = torch.randn(o, R) * 0.01     # nonzero: the backward does its work
    return a.requires_grad_(True), b.requires_grad_(True)


def build(C, L, H, KVH, F, V):
    hd = C // H
    shapes = dict(q=(H * hd, C), k=(KVH * hd, C), v=(KVH * hd, C),
                  o=(C, H * hd), gate=(F, C), up=(F, C), down=(C, F))
    layers, lora = [], []
    for _ in range(L):
        w = {n: torch.randn(*s) * 0.02 for n, s in shapes.items()}
        for n in "qkv":
            w["b" + n] = torch.zeros(shapes[n][0])
        w["n1"], w["n2"] = torch.ones(C), torch.ones(C)
        layers.append(w)
        lora.append({n: lora_pair(*s) for n, s in shapes.items()})
    embed = torch.randn(V, C) * 0.02
    return dict(layers=layers, lora=lora, embed=embed, norm=torch.ones(C),
                hd=hd, H=H, KVH=KVH)


def rmsnorm(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(p, tok, cos, sin, mask):
    """Logits (B, T, V)."""
    s = ALPHA / R
    B, T = tok.shape
    H, KVH, hd = p["H"], p["KVH"], p["hd"]
    x = p["embed"][tok]
    for w, ad in zip(p["layers"], p["lora"]):
        def lin(inp, n):
            a, b = ad[n]
            y = inp @ w[n].T + (inp @ a.T) @ b.T * s
            return y + w["b" + n] if "b" + n in w else y
        h = rmsnorm(x, w["n1"])
        q = lin(h, "q").view(B, T, H, hd).transpose(1, 2)
        k = lin(h, "k").view(B, T, KVH, hd).transpose(1, 2)
        v = lin(h, "v").view(B, T, KVH, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        att = (q @ k.transpose(-1, -2)) / hd ** 0.5 + mask
        y = att.softmax(-1) @ v
        x = x + lin(y.transpose(1, 2).reshape(B, T, H * hd), "o")
        h = rmsnorm(x, w["n2"])
        x = x + lin(torch.nn.functional.silu(lin(h, "gate")) *
                    lin(h, "up"), "down")
    return rmsnorm(x, p["norm"]) @ p["embed"].T


def main():
    C, L, H, KVH, F, V = (int(a) for a in sys.argv[1:7])
    steps = int(sys.argv[7]) if len(sys.argv) > 7 else 2
    torch.set_num_threads(int(sys.argv[8]) if len(sys.argv) > 8 else 2)
    torch.manual_seed(0)
    p = build(C, L, H, KVH, F, V)
    params = [t for ad in p["lora"] for ab in ad.values() for t in ab]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    T, hd = PROMPT + RESP, p["hd"]
    toks = [torch.randint(3, V, (2, T)) for _ in range(PAIRS)]
    inv = 1.0 / 1000000 ** (torch.arange(0, hd, 2).float() / hd)
    ang = torch.arange(T).float()[:, None] * inv
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
    ref = torch.tensor([-1000.0, -1010.0])
    beta = 0.1

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for tok in toks:              # one pair per micro-batch
            logits = forward(p, tok, cos, sin, mask)
            lp = logits[:, PROMPT - 1:-1].log_softmax(-1).gather(
                -1, tok[:, PROMPT:, None]).squeeze(-1).sum(-1)
            r = lp - ref
            loss = -torch.nn.functional.logsigmoid(
                beta * (r[0] - r[1])) / PAIRS
            loss.backward()
            del logits, lp, loss
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return time.perf_counter() - t0

    best = min(step() for _ in range(steps))
    ntok = PAIRS * 2 * T
    print("torch_lora_dpo_step_s=%.2f" % best)
    print("torch_lora_dpo_tokens_per_s=%.1f" % (ntok / best))


if __name__ == "__main__":
    main()
