#!/usr/bin/python3
"""bench_model.py: the PyTorch baseline of `bench_model train`.

The same network (Llama: RMSNorm, rotate-half rope, GQA, SwiGLU, untied
lm_head) and batch shape (8 x 128 tokens, dim 256, 4 layers, 4 heads, 2 kv
heads, ffn 688, vocab 4096), eager fp32 on 2 CPU threads; one step is the
forward pass, log-probabilities of the next tokens and the backward pass
to every parameter.  Prints key=value lines like bench_model.
"""
import math
import sys
import time

import torch

torch.set_num_threads(2)
B, T, C, L, H, KVH, F, V = 8, 128, 256, 4, 4, 2, 688, 4096
HD = C // H
EPS = 1e-5


def param(*shape, ones=False):
    if ones:
        return torch.ones(*shape, requires_grad=True)
    return (torch.randn(*shape) * 0.02).requires_grad_()


def build():
    p = {"embed": param(V, C), "norm": param(C, ones=True),
         "out": param(V, C), "layers": []}
    for _ in range(L):
        p["layers"].append(dict(
            ln1=param(C, ones=True), wq=param(H * HD, C),
            wk=param(KVH * HD, C), wv=param(KVH * HD, C),
            wo=param(C, H * HD), ln2=param(C, ones=True),
            wg=param(F, C), wu=param(F, C), wd=param(C, F)))
    return p


def rmsnorm(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def rotate_half(x):
    return torch.cat((-x[..., HD // 2:], x[..., :HD // 2]), dim=-1)


def forward(p, tok, cos, sin, mask):
    x = p["embed"][tok]                                   # (B,T,C)
    for l in p["layers"]:
        h = rmsnorm(x, l["ln1"])
        q = (h @ l["wq"].T).view(B, T, H, HD).transpose(1, 2)
        k = (h @ l["wk"].T).view(B, T, KVH, HD).transpose(1, 2)
        v = (h @ l["wv"].T).view(B, T, KVH, HD).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HD) + mask
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + a @ l["wo"].T
        h = rmsnorm(x, l["ln2"])
        x = x + (torch.nn.functional.silu(h @ l["wg"].T) *
                 (h @ l["wu"].T)) @ l["wd"].T
    return rmsnorm(x, p["norm"]) @ p["out"].T              # (B,T,V)


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.manual_seed(0)
    p = build()
    params = [p["embed"], p["norm"], p["out"]] + \
        [t for l in p["layers"] for t in l.values()]
    tok = torch.randint(0, V, (B, T))
    tgt = tok[:, 1:]
    inv = 1.0 / 10000 ** (torch.arange(0, HD, 2).float() / HD)
    ang = torch.arange(T).float()[:, None] * inv
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)

    def step():
        for t in params:
            t.grad = None
        t0 = time.perf_counter()
        logits = forward(p, tok, cos, sin, mask)
        lp = logits[:, :-1].log_softmax(-1).gather(
            -1, tgt[..., None]).squeeze(-1)
        loss = -lp.mean()
        t1 = time.perf_counter()
        loss.backward()
        return t1 - t0, time.perf_counter() - t1

    step()
    tf = tb = 0.0
    best = 1e30
    for _ in range(iters):
        f, b = step()
        tf += f
        tb += b
        best = min(best, f + b)
    print("torch_threads=%d" % torch.get_num_threads())
    print("torch_forward_ms=%.1f" % (tf / iters * 1e3))
    print("torch_backward_ms=%.1f" % (tb / iters * 1e3))
    print("torch_train_tokens_per_s_mean=%.0f" % (B * T * iters / (tf + tb)))
    # the fastest step, as bench_model reports it
    print("torch_train_tokens_per_s=%.0f" % (B * T / best))


if __name__ == "__main__":
    main()
