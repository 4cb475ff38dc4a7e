#!/usr/bin/python3
"""gen_model_fixtures.py: reference outputs for tests/unit_model.c.

An independent implementation of the Llama/Qwen2/Qwen3/Mistral decoder in PyTorch
(by hand: transformers is not needed), run in float64 on the weights lib/model/model.c
draws with model_init_normal, which this script reproduces bit for bit
(splitmix64 and Box-Muller).  For each configuration it writes

    tests/fixtures/model/NAME.config.json        the HF config.json
    tests/fixtures/model/NAME.expect.safetensors  tokens, targets, dlogprobs,
        logits, logprobs and grad.<tensor> for every parameter, of a batch of
        two sequences of different lengths, for the loss
        sum_t dlogprobs[t] * logprob[t].

Run it with Debian's interpreter, from the top of the tree:
    /usr/bin/python3 tests/gen_model_fixtures.py
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                   "model")
SEED = 1234
MAT_STD, AUX_STD = 0.3, 0.2

CONFIGS = {
    # grouped-query attention (2 query heads per kv head), tied embeddings
    "llama_gqa_tied": dict(
        architectures=["LlamaForCausalLM"], model_type="llama",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True, hidden_act="silu", bos_token_id=1,
        eos_token_id=2),
    # llama3 rope scaling with every band in use, an explicit head_dim
    # (8, not 16/4), one kv head for four query heads, separate lm_head
    "llama3_untied": dict(
        architectures=["LlamaForCausalLM"], model_type="llama",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
        head_dim=8, max_position_embeddings=128, rms_norm_eps=1e-5,
        rope_theta=500.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0,
                          low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=32),
        tie_word_embeddings=False, hidden_act="silu", bos_token_id=1,
        eos_token_id=[2, 3]),
    # Qwen2: q/k/v biases, no o bias
    "qwen2_bias": dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=1e6,
        tie_word_embeddings=False, hidden_act="silu", use_sliding_window=False,
        bos_token_id=1, eos_token_id=2),
    # Qwen3: RMSNorm of each query and key head (q_norm, k_norm) before
    # rope; head_dim 8 with 4 heads on a width of 16; tied; no biases
    "qwen3_tied": dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_theta=1e6, rope_scaling=None, attention_bias=False,
        attention_dropout=0.0, use_sliding_window=False, sliding_window=None,
        max_window_layers=2, layer_types=["full_attention"] * 2,
        tie_word_embeddings=True, hidden_act="silu", bos_token_id=1,
        eos_token_id=2),
    # Qwen3 with attention_bias: q, k, v and o_proj biases; head_dim 6,
    # one kv head for four query heads, a separate lm_head
    "qwen3_bias": dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
        head_dim=6, max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_theta=10000.0, attention_bias=True, use_sliding_window=False,
        sliding_window=4096, max_window_layers=28,
        tie_word_embeddings=False, hidden_act="silu", bos_token_id=1,
        eos_token_id=2),
    # Mistral: Llama's block with a sliding window of 3 positions, shorter
    # than both sequences (7 and 5), so every layer drops keys; GQA
    "mistral_window": dict(
        architectures=["MistralForCausalLM"], model_type="mistral",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=None, max_position_embeddings=64, rms_norm_eps=1e-5,
        rope_theta=10000.0, sliding_window=3, attention_dropout=0.0,
        tie_word_embeddings=False, hidden_act="silu", bos_token_id=1,
        eos_token_id=2),
    # Gemma 2: embeddings times sqrt(16), (1 + w) norms, post-norms,
    # gelu tanh, scores by query_pre_attn_scalar 6 (not head_dim 8) and
    # softcapped at 2 (small enough to bend), logits softcapped at 3; a
    # window of 64 = the context, which binds nothing: decoding is
    # checked on it
    "gemma2_tied": dict(
        architectures=["Gemma2ForCausalLM"], model_type="gemma2",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_theta=10000.0, attention_bias=False, attention_dropout=0.0,
        hidden_act="gelu_pytorch_tanh",
        hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=6,
        attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        tie_word_embeddings=True, bos_token_id=2, eos_token_id=1,
        pad_token_id=0),
    # Gemma 2 with a window of 3 that the 7-token sequence passes, on
    # layers 0 and 2 (1 and 3 full), attention_bias, untied
    "gemma2_window": dict(
        architectures=["Gemma2ForCausalLM"], model_type="gemma2",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1,
        head_dim=6, max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_theta=10000.0, attention_bias=True,
        hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=8,
        attn_logit_softcapping=1.5, final_logit_softcapping=2.5,
        sliding_window=3, tie_word_embeddings=False, bos_token_id=2,
        eos_token_id=1),
    # Gemma 3 text: Gemma 2's block with (1 + w) q/k norms, no softcaps,
    # layers 0 and 1 sliding with rope_local_base_freq, layer 2 global
    # with rope_theta; the window (64) binds nothing: decoding is checked
    "gemma3_tied": dict(
        architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_theta=1000000.0, rope_local_base_freq=10.0, rope_scaling=None,
        attention_bias=False, attention_dropout=0.0,
        hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=6,
        attn_logit_softcapping=None, final_logit_softcapping=None,
        sliding_window=64, sliding_window_pattern=3,
        tie_word_embeddings=True, bos_token_id=2, eos_token_id=1),
    # Gemma 3 with a binding window of 3, linear rope scaling (factor 4)
    # on the global layers, a final softcap, layer_types given, biases,
    # untied
    "gemma3_window": dict(
        architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
        vocab_size=32, hidden_size=16, intermediate_size=24,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1,
        head_dim=6, max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_theta=100.0, rope_local_base_freq=10000.0,
        rope_scaling=dict(rope_type="linear", factor=4.0),
        attention_bias=True, hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=8, final_logit_softcapping=2.5,
        sliding_window=3, sliding_window_pattern=2,
        layer_types=["sliding_attention", "full_attention"] * 2,
        tie_word_embeddings=False, bos_token_id=2, eos_token_id=1),
}

LENS = [7, 5]

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


class Rng:
    def __init__(self, seed):
        self.s = seed

    def normal(self):
        self.s, a = splitmix64(self.s)
        self.s, b = splitmix64(self.s)
        u1 = ((a >> 11) + 1) * 2.0 ** -53
        u2 = (b >> 11) * 2.0 ** -53
        return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def biases(c):
    """(q/k/v biases, o_proj bias): Qwen2 always has the first alone;
    Qwen3 has both as attention_bias says (Qwen3Attention)."""
    if c["model_type"] == "qwen2":
        return True, False
    if c["model_type"] in ("qwen3", "gemma2", "gemma3_text"):
        return c.get("attention_bias", False), c.get("attention_bias", False)
    return False, False


def tensor_list(c):
    """(name, shape, kind) in lib/model/model_config.c's layout order."""
    C, V = c["hidden_size"], c["vocab_size"]
    hd = head_dim(c)
    Q = c["num_attention_heads"] * hd
    KV = c["num_key_value_heads"] * hd
    F = c["intermediate_size"]
    bias, obias = biases(c)
    qk_norm = c["model_type"] == "qwen3"
    t = [("model.embed_tokens.weight", (V, C), "mat")]
    if c["model_type"] in ("gemma2", "gemma3_text"):
        return gemma2_tensor_list(c, t)
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        t.append((p + "input_layernorm.weight", (C,), "norm"))
        for nm, o in (("q", Q), ("k", KV), ("v", KV)):
            t.append((p + "self_attn.%s_proj.weight" % nm, (o, C), "mat"))
            if bias:
                t.append((p + "self_attn.%s_proj.bias" % nm, (o,), "bias"))
        t.append((p + "self_attn.o_proj.weight", (C, Q), "mat"))
        if obias:
            t.append((p + "self_attn.o_proj.bias", (C,), "bias"))
        if qk_norm:
            t.append((p + "self_attn.q_norm.weight", (hd,), "norm"))
            t.append((p + "self_attn.k_norm.weight", (hd,), "norm"))
        t.append((p + "post_attention_layernorm.weight", (C,), "norm"))
        t.append((p + "mlp.gate_proj.weight", (F, C), "mat"))
        t.append((p + "mlp.up_proj.weight", (F, C), "mat"))
        t.append((p + "mlp.down_proj.weight", (C, F), "mat"))
    t.append(("model.norm.weight", (C,), "norm"))
    if not c.get("tie_word_embeddings"):
        t.append(("lm_head.weight", (V, C), "mat"))
    return t


def gemma2_tensor_list(c, t):
    """Gemma2DecoderLayer's modules in declaration order: attention, MLP,
    then its four norms, each (1 + w) and so drawn around 0."""
    C, hd, F = c["hidden_size"], head_dim(c), c["intermediate_size"]
    Q = c["num_attention_heads"] * hd
    KV = c["num_key_value_heads"] * hd
    bias, obias = biases(c)
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        for nm, o in (("q", Q), ("k", KV), ("v", KV)):
            t.append((p + "self_attn.%s_proj.weight" % nm, (o, C), "mat"))
            if bias:
                t.append((p + "self_attn.%s_proj.bias" % nm, (o,), "bias"))
        t.append((p + "self_attn.o_proj.weight", (C, Q), "mat"))
        if obias:
            t.append((p + "self_attn.o_proj.bias", (C,), "bias"))
        if c["model_type"] == "gemma3_text":
            t.append((p + "self_attn.q_norm.weight", (hd,), "norm1"))
            t.append((p + "self_attn.k_norm.weight", (hd,), "norm1"))
        t.append((p + "mlp.gate_proj.weight", (F, C), "mat"))
        t.append((p + "mlp.up_proj.weight", (F, C), "mat"))
        t.append((p + "mlp.down_proj.weight", (C, F), "mat"))
        for nm in ("input_layernorm", "post_attention_layernorm",
                   "pre_feedforward_layernorm", "post_feedforward_layernorm"):
            t.append((p + nm + ".weight", (C,), "norm1"))
    t.append(("model.norm.weight", (C,), "norm1"))
    if not c.get("tie_word_embeddings", True):
        t.append(("lm_head.weight", (c["vocab_size"], C), "mat"))
    return t


def init_weights(c):
    rng = Rng(SEED)
    w = {}
    for name, shape, kind in tensor_list(c):
        base = 1.0 if kind == "norm" else 0.0
        sd = MAT_STD if kind == "mat" else AUX_STD
        n = int(np.prod(shape))
        vals = np.array([np.float32(base + sd * rng.normal())
                         for _ in range(n)], dtype=np.float32)
        w[name] = torch.tensor(vals.reshape(shape), dtype=torch.float64,
                               requires_grad=True)
    return w


def inv_freq(c, hd):
    """HF's rope frequencies, llama3 scaling written with masks."""
    theta = c.get("rope_theta", 10000.0)
    f = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    rs = c.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor = rs["factor"]
        lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wl = 2 * math.pi / f
        scaled = torch.where(wl > old / lo, f / factor, f)
        smooth = (old / wl - lo) / (hi - lo)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wl < old / hi) & ~(wl > old / lo)
        f = torch.where(medium, mid, scaled)
    return f


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(c, w, tokens):
    """Logits (T, V) of one sequence."""
    C = c["hidden_size"]
    H, KVH = c["num_attention_heads"], c["num_key_value_heads"]
    hd = head_dim(c)
    eps = c["rms_norm_eps"]
    T = len(tokens)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq(c, hd)
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    W = c.get("sliding_window") if c["model_type"] == "mistral" else None
    if W:
        # MistralModel's sliding-window mask: query i sees key j only
        # when i - j < W, so the W positions j = i-W+1 .. i
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        mask = mask | (i - j >= W)
    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i

        def lin(inp, nm):
            y = inp @ w[p + nm + ".weight"].T
            b = w.get(p + nm + ".bias")
            return y + b if b is not None else y
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, "self_attn.q_proj").view(T, H, hd)
        k = lin(h, "self_attn.k_proj").view(T, KVH, hd)
        v = lin(h, "self_attn.v_proj").view(T, KVH, hd)
        if p + "self_attn.q_norm.weight" in w:
            # Qwen3: each head normalised over its hd channels, one
            # weight (hd) for all heads, before rotary
            q = rmsnorm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        s = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(hd)
        s = s.masked_fill(mask, float("-inf"))
        a = torch.einsum("hij,jhd->ihd", s.softmax(-1), v).reshape(T, H * hd)
        x = x + lin(a, "self_attn.o_proj")
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        g, u = lin(h, "mlp.gate_proj"), lin(h, "mlp.up_proj")
        x = x + lin(torch.nn.functional.silu(g) * u, "mlp.down_proj")
    x = rmsnorm(x, w["model.norm.weight"], eps)
    out = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ out.T


def gemma_rmsnorm(x, w, eps):
    """Gemma's: x / rms(x) times (1 + w)."""
    return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)) * (1 + w)


def gemma2_forward(c, w, tokens):
    """Logits (T, V) of one sequence, Gemma2ForCausalLM's arithmetic, or
    Gemma3ForCausalLM's: q/k norms, two rope bases, default softcaps none,
    the sliding pattern sliding_window_pattern."""
    g3 = c["model_type"] == "gemma3_text"
    C = c["hidden_size"]
    H, KVH = c["num_attention_heads"], c["num_key_value_heads"]
    hd = head_dim(c)
    eps = c["rms_norm_eps"]
    T = len(tokens)
    def rope_table(f):
        ang = torch.arange(T, dtype=torch.float64)[:, None] * f
        emb = torch.cat((ang, ang), dim=-1)
        return emb.cos()[:, None, :], emb.sin()[:, None, :]
    f = inv_freq(c, hd)
    rs = c.get("rope_scaling")
    if rs and rs.get("rope_type") == "linear":
        f = f / rs["factor"]
    glob = rope_table(f)
    if g3:
        # the local layers: rope_local_base_freq, no scaling
        loc = rope_table(1.0 / c["rope_local_base_freq"] ** (
            torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    else:
        loc = glob
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    causal = j > i
    W = c.get("sliding_window", 4096)
    # sliding: a query at i sees keys j with i - W < j <= i
    sliding = causal | (j <= i - W)
    pat = c.get("sliding_window_pattern", 6) if g3 else 2
    types = c.get("layer_types") or [
        "sliding_attention" if (l + 1) % pat else "full_attention"
        for l in range(c["num_hidden_layers"])]
    acap = c.get("attn_logit_softcapping")
    fcap = c.get("final_logit_softcapping")
    # the normalizer in the hidden dtype (float32 weights)
    norm = float(np.float32(C ** 0.5))
    x = w["model.embed_tokens.weight"][torch.tensor(tokens)] * norm
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l

        def lin(inp, nm):
            y = inp @ w[p + nm + ".weight"].T
            b = w.get(p + nm + ".bias")
            return y + b if b is not None else y
        h = gemma_rmsnorm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, "self_attn.q_proj").view(T, H, hd)
        k = lin(h, "self_attn.k_proj").view(T, KVH, hd)
        v = lin(h, "self_attn.v_proj").view(T, KVH, hd)
        if g3:
            q = gemma_rmsnorm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = gemma_rmsnorm(k, w[p + "self_attn.k_norm.weight"], eps)
        cos, sin = loc if types[l] == "sliding_attention" else glob
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        s = torch.einsum("ihd,jhd->hij", q, k) * \
            c["query_pre_attn_scalar"] ** -0.5
        if acap:
            s = torch.tanh(s / acap) * acap
        mask = sliding if types[l] == "sliding_attention" else causal
        s = s.masked_fill(mask, float("-inf"))
        a = torch.einsum("hij,jhd->ihd", s.softmax(-1), v).reshape(T, H * hd)
        a = gemma_rmsnorm(lin(a, "self_attn.o_proj"),
                          w[p + "post_attention_layernorm.weight"], eps)
        x = x + a
        h = gemma_rmsnorm(x, w[p + "pre_feedforward_layernorm.weight"], eps)
        g, u = lin(h, "mlp.gate_proj"), lin(h, "mlp.up_proj")
        m = lin(torch.nn.functional.gelu(g, approximate="tanh") * u,
                "mlp.down_proj")
        x = x + gemma_rmsnorm(m, w[p + "post_feedforward_layernorm.weight"],
                              eps)
    x = gemma_rmsnorm(x, w["model.norm.weight"], eps)
    out = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    logits = x @ out.T
    if fcap:
        logits = torch.tanh(logits / fcap) * fcap
    return logits


def model_forward(c, w, tokens):
    """Logits (T, V) of one sequence, by the config's family."""
    if c["model_type"] in ("gemma2", "gemma3_text"):
        return gemma2_forward(c, w, tokens)
    return forward(c, w, tokens)


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors:
        dt = {np.float32: "F32", np.int32: "I32"}[arr.dtype.type]
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for name, c in CONFIGS.items():
        V = c["vocab_size"]
        w = init_weights(c)
        # tokens: a fixed pseudo-random walk; targets: the next token,
        # none (-1) after the last of each sequence and at one other place
        toks, tgts = [], []
        t = 5
        for L in LENS:
            seq = []
            for _ in range(L):
                t = (t * 7 + 3) % V
                seq.append(t)
            toks.append(seq)
            tg = seq[1:] + [-1]
            tg[1] = -1
            tgts.append(tg)
        N = sum(LENS)
        dlp = np.array([-(1.0 + 0.25 * (i % 4)) for i in range(N)],
                       dtype=np.float32)
        logits, lps = [], []
        for seq, tg in zip(toks, tgts):
            lg = model_forward(c, w, seq)
            lsm = lg.log_softmax(-1)
            lp = torch.stack([lsm[i, y] if y >= 0
                              else torch.zeros((), dtype=torch.float64)
                              for i, y in enumerate(tg)])
            logits.append(lg)
            lps.append(lp)
        logits = torch.cat(logits)
        lps = torch.cat(lps)
        loss = (lps * torch.tensor(dlp, dtype=torch.float64)).sum()
        loss.backward()
        flat_t = np.array(sum(toks, []), dtype=np.int32)
        flat_y = np.array(sum(tgts, []), dtype=np.int32)
        out = [("lens", np.array(LENS, dtype=np.int32)),
               ("tokens", flat_t), ("targets", flat_y),
               ("dlogprobs", dlp),
               ("logits", logits.detach().numpy().astype(np.float32)),
               ("logprobs", lps.detach().numpy().astype(np.float32))]
        for tn, _, _ in tensor_list(c):
            out.append(("grad." + tn,
                        w[tn].grad.numpy().astype(np.float32)))
        with open(os.path.join(OUT, name + ".config.json"), "w") as f:
            json.dump(c, f, indent=2)
            f.write("\n")
        save_safetensors(os.path.join(OUT, name + ".expect.safetensors"), out)
        print("%s: loss %.6f" % (name, loss.item()), file=sys.stderr)


if __name__ == "__main__":
    main()
