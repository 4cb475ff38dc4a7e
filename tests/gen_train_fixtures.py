#!/usr/bin/python3
"""gen_train_fixtures.py: one optimizer step of each train-step objective,
computed independently in PyTorch, for tests/train_fixtures.sh.

The network is tests/gen_model_fixtures.py's (imported, not copied), run in
float64 from float32 weights; the optimizer is torch.optim.AdamW with the
norm weights and biases in a group without weight decay, and the gradient
is clipped with torch.nn.utils.clip_grad_norm_.  For each objective NAME it
writes under tests/fixtures/train/:

    NAME.jsonl               the input records (token fields only)
    NAME.args                train-step's options for the step
    NAME.expect.json         loss and grad_norm of the step
    NAME.expect.safetensors  every parameter after the update

and the starting checkpoints init/ (a Qwen2 causal LM, so biases are
exercised) and init_rm/ (the same body with a score head).  sft_qwen3 and
dpo_qwen3 are the SFT and DPO steps again from init_qwen3/, a Qwen3 causal
LM (q/k norms, which are not decayed, and attention_bias).

Run it with Debian's interpreter, from the top of the tree:
    /usr/bin/python3 tests/gen_train_fixtures.py [NAME ...]
"""
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_model_fixtures as gm  # noqa: E402

OUT = os.path.join(HERE, "fixtures", "train")
SEED = 4321
MAT_STD, AUX_STD = 0.2, 0.1

CFG = dict(
    architectures=["Qwen2ForCausalLM"], model_type="qwen2",
    vocab_size=32, hidden_size=16, intermediate_size=24,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0,
    tie_word_embeddings=False, hidden_act="silu", use_sliding_window=False,
    bos_token_id=1, eos_token_id=2, torch_dtype="float32")

CFG_RM = dict(CFG, architectures=["Qwen2ForSequenceClassification"],
              id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})

CFG_QWEN3 = dict(
    architectures=["Qwen3ForCausalLM"], model_type="qwen3",
    vocab_size=32, hidden_size=16, intermediate_size=24,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=6, max_position_embeddings=64, rms_norm_eps=1e-6,
    rope_theta=1000000.0, rope_scaling=None, attention_bias=True,
    attention_dropout=0.0, use_sliding_window=False, sliding_window=None,
    max_window_layers=2, layer_types=["full_attention"] * 2,
    tie_word_embeddings=False, hidden_act="silu", bos_token_id=1,
    eos_token_id=2, torch_dtype="float32")

# Gemma 2: post-norms, (1 + w) norms (undecayed), gelu tanh, softcaps,
# query_pre_attn_scalar, the embedding normalizer, and a window of 3 on
# layer 0 that the records' sequences pass.
CFG_GEMMA2 = dict(
    architectures=["Gemma2ForCausalLM"], model_type="gemma2",
    vocab_size=32, hidden_size=16, intermediate_size=24,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=6, max_position_embeddings=64, rms_norm_eps=1e-6,
    rope_theta=10000.0, attention_bias=False, attention_dropout=0.0,
    hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
    query_pre_attn_scalar=8, attn_logit_softcapping=2.0,
    final_logit_softcapping=4.0, sliding_window=3,
    layer_types=["sliding_attention", "full_attention"],
    tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
    torch_dtype="float32")

# Optimizer settings shared by every fixture: a large learning rate so the
# update dominates the comparison, weight decay so its masking is tested.
LR, WD, B1, B2, EPS = 1e-2, 0.1, 0.9, 0.95, 1e-8


def tensors(cfg, rm):
    """(name, shape, kind) in lib/model/model_config.c's layout order."""
    t = [x for x in gm.tensor_list(dict(cfg, tie_word_embeddings=False))
         if not (rm and x[0] == "lm_head.weight")]
    if rm:
        t.append(("score.weight", (1, cfg["hidden_size"]), "mat"))
    return t


def init(cfg, rm):
    """Weights from the model core's generator, float32 values in float64."""
    rng = gm.Rng(SEED)
    w, kinds = {}, {}
    for name, shape, kind in tensors(cfg, rm):
        base = 1.0 if kind == "norm" else 0.0    # "norm1": (1 + w)
        sd = MAT_STD if kind == "mat" else AUX_STD
        n = int(np.prod(shape))
        v = np.array([np.float32(base + sd * rng.normal()) for _ in range(n)],
                     dtype=np.float32).reshape(shape)
        w[name] = torch.tensor(v, dtype=torch.float64, requires_grad=True)
        kinds[name] = kind
    return w, kinds


def save_ckpt(path, cfg, w):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    gm.save_safetensors(os.path.join(path, "model.safetensors"),
                        [(n, t.detach().numpy().astype(np.float32))
                         for n, t in w.items()])


def token_logprobs(w, prompt, resp, cfg=CFG):
    """Log-probabilities (len(resp),) of the response given the prompt."""
    seq = prompt + resp
    lsm = gm.model_forward(cfg, w, seq).log_softmax(-1)
    p = len(prompt)
    return torch.stack([lsm[p - 1 + i, y] for i, y in enumerate(resp)])


def reward(w, seq):
    """The score head at the last token: the network with score as head."""
    v = dict(w)
    v["lm_head.weight"] = w["score.weight"]
    return gm.forward(CFG, v, seq)[-1, 0]


def step(w, kinds, loss, clip):
    """Backward, clip, one AdamW update; returns (loss, grad norm)."""
    loss.backward()
    params = list(w.values())
    gn = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else 1e30)
    decay = [t for n, t in w.items() if kinds[n] == "mat"]
    plain = [t for n, t in w.items() if kinds[n] != "mat"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": plain, "weight_decay": 0.0}],
                            lr=LR, betas=(B1, B2), eps=EPS)
    opt.step()
    return loss.item(), gn.item()


def walk(seed, n, lo=3):
    """A fixed token sequence in [lo, vocab)."""
    out, t = [], seed
    for _ in range(n):
        t = (t * 13 + 7) % 29
        out.append(lo + t)
    return out


def write(name, records, args, w, loss, gn):
    with open(os.path.join(OUT, name + ".jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    with open(os.path.join(OUT, name + ".args"), "w") as f:
        f.write(" ".join(args) + "\n")
    with open(os.path.join(OUT, name + ".expect.json"), "w") as f:
        json.dump({"loss": loss, "grad_norm": gn}, f)
        f.write("\n")
    gm.save_safetensors(os.path.join(OUT, name + ".expect.safetensors"),
                        [(n, t.detach().numpy().astype(np.float32))
                         for n, t in w.items()])
    print("%s: loss %.6f grad_norm %.6f" % (name, loss, gn), file=sys.stderr)


COMMON = ["--lr", str(LR), "--weight-decay", str(WD), "--adam-beta1",
          str(B1), "--adam-beta2", str(B2), "--adam-eps", str(EPS),
          "--no-shuffle"]


def fixture_sft(cfg=CFG, name="sft"):
    """prompt + response records and one plain token record."""
    w, kinds = init(cfg, False)
    recs = [dict(prompt_tokens=[1] + walk(1, 4), response_tokens=walk(2, 5)),
            dict(prompt_tokens=[1] + walk(3, 2), response_tokens=walk(4, 7)),
            dict(tokens=[1] + walk(5, 6))]
    nll, ntok = 0, 0
    for r in recs:
        if "tokens" in r:
            lp = token_logprobs(w, r["tokens"][:1], r["tokens"][1:], cfg)
        else:
            lp = token_logprobs(w, r["prompt_tokens"], r["response_tokens"],
                                cfg)
        nll = nll - lp.sum()
        ntok += len(lp)
    loss, gn = step(w, kinds, nll / ntok, 1.0)
    write(name, recs, COMMON + ["--loss", "sft", "--batch-size", "3",
                                 "--clip-grad", "1.0"], w, loss, gn)


def fixture_dpo(cfg=CFG, name="dpo"):
    """cDPO with a per-record label_smoothing, RPO's NLL term, clipping."""
    w, kinds = init(cfg, False)
    beta, eps, nll_coef = 0.5, 0.1, 0.3
    recs, loss = [], 0
    for i in range(3):
        p = [1] + walk(10 + i, 3 + i)
        yw, yl = walk(20 + i, 4 + i) + [2], walk(30 + i, 6 - i) + [2]
        lw, ll = token_logprobs(w, p, yw, cfg), token_logprobs(w, p, yl, cfg)
        rw = float(lw.sum()) - 0.7 + 0.4 * i    # a reference that differs
        rl = float(ll.sum()) + 0.5 - 0.3 * i
        r = dict(id="p%d" % i, prompt_tokens=p,
                 chosen=dict(response_tokens=yw, ref_logprob=rw),
                 rejected=dict(response_tokens=yl, ref_logprob=rl))
        e = eps
        if i == 1:
            r["label_smoothing"] = e = 0.25
        recs.append(r)
        z = beta * ((lw.sum() - rw) - (ll.sum() - rl))
        li = (-(1 - e) * torch.nn.functional.logsigmoid(z)
              - e * torch.nn.functional.logsigmoid(-z))
        li = li + nll_coef * (-lw.sum() / len(yw))
        loss = loss + li
    loss, gn = step(w, kinds, loss / len(recs), 0.5)
    write(name, recs, COMMON + [
        "--loss", "dpo", "--batch-size", "3", "--micro-batch", "2",
        "--beta", str(beta), "--label-smoothing", str(eps),
        "--nll-coef", str(nll_coef), "--clip-grad", "0.5"], w, loss, gn)


def pairs(base):
    """Three prompt/chosen/rejected triples of different lengths."""
    out = []
    for i in range(3):
        p = [1] + walk(base + i, 2 + i)
        out.append((p, walk(base + 10 + i, 3 + i) + [2],
                    walk(base + 20 + i, 5 - i) + [2]))
    return out


def fixture_simpo():
    """SimPO: -log sigmoid(beta (mean lp_w - mean lp_l) - gamma), no ref."""
    w, kinds = init(CFG, False)
    beta, gamma = 2.0, 0.7
    recs, loss = [], 0
    for p, yw, yl in pairs(90):
        recs.append(dict(prompt_tokens=p, chosen=dict(response_tokens=yw),
                         rejected=dict(response_tokens=yl)))
        mw = token_logprobs(w, p, yw).mean()
        ml = token_logprobs(w, p, yl).mean()
        loss = loss - torch.nn.functional.logsigmoid(beta * (mw - ml) - gamma)
    loss, gn = step(w, kinds, loss / len(recs), 1.0)
    write("simpo", recs, COMMON + [
        "--loss", "simpo", "--batch-size", "3", "--micro-batch", "2",
        "--beta", str(beta), "--simpo-gamma", str(gamma),
        "--clip-grad", "1.0"], w, loss, gn)


def fixture_orpo():
    """ORPO as TRL computes it: the chosen tokens' mean NLL over the batch,
    minus lambda times the mean log sigmoid of the log odds ratio of the
    responses' mean log-probs."""
    w, kinds = init(CFG, False)
    lam = 0.25
    recs, nll, ntok, ratio = [], 0, 0, 0
    for p, yw, yl in pairs(120):
        recs.append(dict(prompt_tokens=p, chosen=dict(response_tokens=yw),
                         rejected=dict(response_tokens=yl)))
        lw, ll = token_logprobs(w, p, yw), token_logprobs(w, p, yl)
        nll, ntok = nll - lw.sum(), ntok + len(yw)
        mw, ml = lw.mean(), ll.mean()
        log_odds = (mw - ml) - (torch.log1p(-torch.exp(mw))
                                - torch.log1p(-torch.exp(ml)))
        ratio = ratio + torch.nn.functional.logsigmoid(log_odds)
    loss = nll / ntok - lam * ratio / len(recs)
    loss, gn = step(w, kinds, loss, 1.0)
    write("orpo", recs, COMMON + [
        "--loss", "orpo", "--batch-size", "3", "--micro-batch", "2",
        "--orpo-lambda", str(lam), "--clip-grad", "1.0"], w, loss, gn)


def fixture_kto():
    """KTO on unpaired answers: z0 = max(0, mean over the batch of the
    mismatched pairs' log-ratios) without gradient, then w_d (1 -
    sigmoid(beta (r - z0))) or w_u (1 - sigmoid(beta (z0 - r))), the mean
    over the batch.  The kl map of record i holds record i+1's response
    (the last takes the first's), as pair --kto writes them."""
    w, kinds = init(CFG, False)
    beta, wd, wu = 0.3, 1.2, 0.8
    items = []
    for i in range(4):
        p = [1] + walk(150 + i, 2 + i)
        y = walk(160 + i, 3 + (i * 2) % 5) + [2]
        items.append((p, y, i % 3 != 1))    # desirable, undesirable, ...
    recs, kl_sum, logratio = [], 0.0, []
    for i, (p, y, lab) in enumerate(items):
        ykl = items[(i + 1) % len(items)][1]
        lp = token_logprobs(w, p, y)
        lkl = token_logprobs(w, p, ykl)
        ref = float(lp.sum()) + 0.6 - 0.35 * i   # a reference that differs
        ref_kl = float(lkl.sum()) - 1.1 + 0.2 * i
        kl_sum += float(lkl.sum()) - ref_kl
        logratio.append((lp.sum() - ref, lab))
        recs.append(dict(id="k%d" % i, prompt_tokens=p, response_tokens=y,
                         label=lab, ref_logprob=ref,
                         kl=dict(response_tokens=ykl, ref_logprob=ref_kl)))
    z0 = max(0.0, kl_sum / len(items))
    loss = 0
    for r, lab in logratio:
        if lab:
            loss = loss + wd * (1 - torch.sigmoid(beta * (r - z0)))
        else:
            loss = loss + wu * (1 - torch.sigmoid(beta * (z0 - r)))
    loss, gn = step(w, kinds, loss / len(items), 1.0)
    write("kto", recs, COMMON + [
        "--loss", "kto", "--batch-size", "4", "--micro-batch", "3",
        "--beta", str(beta), "--kto-desirable-weight", str(wd),
        "--kto-undesirable-weight", str(wu), "--clip-grad", "1.0"],
        w, loss, gn)
    print("kto: z0 %.6f" % z0, file=sys.stderr)


def fixture_rm():
    """Bradley-Terry on a score head."""
    w, kinds = init(CFG, True)
    save_ckpt(os.path.join(OUT, "init_rm"), CFG_RM, w)
    recs, loss = [], 0
    for i in range(4):
        p = [1] + walk(40 + i, 2 + i)
        yw, yl = walk(50 + i, 3 + (i % 2)), walk(60 + i, 5 - (i % 3))
        recs.append(dict(prompt_tokens=p, chosen=dict(response_tokens=yw),
                         rejected=dict(response_tokens=yl)))
        d = reward(w, p + yw) - reward(w, p + yl)
        loss = loss - torch.nn.functional.logsigmoid(d)
    loss, gn = step(w, kinds, loss / len(recs), 0)
    write("rm", recs, COMMON + ["--loss", "rm", "--batch-size", "4",
                                "--clip-grad", "0"], w, loss, gn)


def fixture_pg():
    """GRPO advantages, the PPO clipped objective, k3 KL, sample weights."""
    w, kinds = init(CFG, False)
    save_ckpt(os.path.join(OUT, "init"), CFG, w)
    clip, kl_coef = 0.2, 0.1
    rewards = [[1.0, 0.0, 0.5], [0.0, 0.0, 1.0]]
    recs, samples = [], []
    for g in range(2):
        p = [1] + walk(70 + g, 3)
        for s in range(3):
            y = walk(80 + 3 * g + s, 3 + s)
            lp = token_logprobs(w, p, y)
            base = lp.detach().numpy()
            # rollout and reference log-probs near the policy's, so that
            # some ratios leave the clipping region and the KL is not 0
            old = [float(base[t] + 0.35 * math.sin(3 * g + 2 * s + t))
                   for t in range(len(y))]
            ref = [float(base[t] + 0.2 * math.cos(g + s + 2 * t))
                   for t in range(len(y))]
            r = dict(id="q%d" % g, sample=s, prompt_tokens=p,
                     response_tokens=y, logprobs=old, ref_logprobs=ref,
                     reward=rewards[g][s])
            if g == 1 and s == 0:
                r["weight"] = 0.5
            recs.append(r)
            samples.append((lp, old, ref, rewards[g][s], r.get("weight", 1)))
    # GRPO: group z-scores with the sample standard deviation
    adv = []
    for g in range(2):
        rg = np.array(rewards[g])
        adv += list((rg - rg.mean()) / (rg.std(ddof=1) + 1e-4))
    total, ntok = 0, 0
    for (lp, old, ref, _, wt), a in zip(samples, adv):
        ratio = torch.exp(lp - torch.tensor(old, dtype=torch.float64))
        surr = torch.min(ratio * a, torch.clamp(ratio, 1 - clip, 1 + clip) * a)
        x = torch.tensor(ref, dtype=torch.float64) - lp
        k3 = torch.exp(x) - x - 1
        total = total + wt * (-surr + kl_coef * k3).sum()
        ntok += len(old)
    loss, gn = step(w, kinds, total / ntok, 1.0)
    write("pg", recs, COMMON + [
        "--loss", "pg", "--batch-size", "6", "--advantage", "grpo",
        "--scale", "group", "--clip", str(clip), "--kl-coef", str(kl_coef),
        "--kl-estimator", "k3", "--loss-agg", "token", "--clip-grad", "1.0"],
        w, loss, gn)


def ppo_samples(base, lp_of):
    """Six samples of two prompts for PPO: rollout log-probs near the
    policy's (some ratios clip), a reference that differs, the critic's
    values, rewards; lp_of(p, y) gives the policy's log-probs or None."""
    out = []
    for g in range(2):
        p = [1] + walk(base + g, 3)
        for s in range(3):
            y = walk(base + 10 + 3 * g + s, 3 + s)
            lp = lp_of(p, y)
            b = lp.detach().numpy() if lp is not None else [-3.0] * len(y)
            old = [float(b[t] + 0.3 * math.sin(2 * g + 3 * s + t))
                   for t in range(len(y))]
            ref = [float(old[t] + 0.25 * math.cos(g + 2 * s + t))
                   for t in range(len(y))]
            val = [0.4 * math.sin(g + s + 1.7 * t) for t in range(len(y))]
            out.append(dict(id="v%d" % g, sample=s, prompt_tokens=p,
                            response_tokens=y, logprobs=old,
                            ref_logprobs=ref, values=val,
                            reward=[1.0, 0.0, 0.5, 0.2, 0.0, 1.0][3 * g + s]))
    return out


def gae(r, v, gamma, lam):
    """A_t = sum_k (gamma lambda)^k delta_{t+k}, v after the end 0."""
    n, adv = len(r), []
    for t in range(n):
        a, wk = 0.0, 1.0
        for k in range(t, n):
            vn = v[k + 1] if k + 1 < n else 0.0
            a += wk * (r[k] + gamma * vn - v[k])
            wk *= gamma * lam
        adv.append(a)
    return adv


def ppo_targets(recs, kl_coef, gamma, lam):
    """Per-token rewards (-kl_coef (old - ref), the reward at the last
    token), GAE advantages and returns for each record."""
    out = []
    for r in recs:
        rw = [-kl_coef * (o - f) for o, f in zip(r["logprobs"],
                                                  r["ref_logprobs"])]
        rw[-1] += r["reward"]
        a = gae(rw, r["values"], gamma, lam)
        out.append((a, [x + v for x, v in zip(a, r["values"])]))
    return out


def fixture_ppo():
    """PPO with a critic: GAE advantages whitened over every token of the
    batch (unbiased variance), the clipped objective, the token mean."""
    w, kinds = init(CFG, False)
    clip, kl_coef, gamma, lam = 0.2, 0.1, 0.9, 0.8
    recs = ppo_samples(170, lambda p, y: token_logprobs(w, p, y))
    tg = ppo_targets(recs, kl_coef, gamma, lam)
    flat = np.array([x for a, _ in tg for x in a])
    mean, sd = flat.mean(), math.sqrt(flat.var(ddof=1) + 1e-8)
    total, ntok = 0, 0
    for r, (a, _) in zip(recs, tg):
        lp = token_logprobs(w, r["prompt_tokens"], r["response_tokens"])
        at = (torch.tensor(a, dtype=torch.float64) - mean) / sd
        ratio = torch.exp(lp - torch.tensor(r["logprobs"],
                                            dtype=torch.float64))
        surr = torch.min(ratio * at,
                         torch.clamp(ratio, 1 - clip, 1 + clip) * at)
        total = total - surr.sum()
        ntok += len(a)
    loss, gn = step(w, kinds, total / ntok, 1.0)
    write("ppo", recs, COMMON + [
        "--loss", "ppo", "--batch-size", "6", "--micro-batch", "4",
        "--clip", str(clip), "--kl-coef", str(kl_coef), "--gamma",
        str(gamma), "--lambda", str(lam), "--clip-grad", "1.0"],
        w, loss, gn)


def fixture_value():
    """The critic's clipped value loss against GAE's returns, from a
    score head's value at each position that predicts a response token."""
    w, kinds = init(CFG, True)
    vclip, kl_coef, gamma, lam = 0.15, 0.1, 0.9, 0.8
    recs = ppo_samples(190, lambda p, y: None)
    tg = ppo_targets(recs, kl_coef, gamma, lam)
    v = dict(w)
    v["lm_head.weight"] = w["score.weight"]
    total, ntok = 0, 0
    for r, (_, ret) in zip(recs, tg):
        p, y = r["prompt_tokens"], r["response_tokens"]
        out = gm.forward(CFG, v, p + y)[:, 0]
        vn = out[len(p) - 1:len(p) - 1 + len(y)]
        old = torch.tensor(r["values"], dtype=torch.float64)
        rt = torch.tensor(ret, dtype=torch.float64)
        vc = old + torch.clamp(vn - old, -vclip, vclip)
        total = total + 0.5 * torch.max((vn - rt) ** 2, (vc - rt) ** 2).sum()
        ntok += len(y)
    loss, gn = step(w, kinds, total / ntok, 1.0)
    write("value", recs, COMMON + [
        "--loss", "value", "--batch-size", "6", "--micro-batch", "4",
        "--value-clip", str(vclip), "--kl-coef", str(kl_coef), "--gamma",
        str(gamma), "--lambda", str(lam), "--clip-grad", "1.0"],
        w, loss, gn)


def fixture_qwen3():
    """init_qwen3/, and the SFT and DPO steps from it."""
    w, _ = init(CFG_QWEN3, False)
    save_ckpt(os.path.join(OUT, "init_qwen3"), CFG_QWEN3, w)
    fixture_sft(CFG_QWEN3, "sft_qwen3")
    fixture_dpo(CFG_QWEN3, "dpo_qwen3")


def fixture_gemma2():
    """init_gemma2/, and the SFT and DPO steps from it."""
    w, _ = init(CFG_GEMMA2, False)
    save_ckpt(os.path.join(OUT, "init_gemma2"), CFG_GEMMA2, w)
    fixture_sft(CFG_GEMMA2, "sft_gemma2")
    fixture_dpo(CFG_GEMMA2, "dpo_gemma2")


# pg writes init/ and rm init_rm/, which the others start from.
FIXTURES = ["pg", "sft", "dpo", "rm", "simpo", "orpo", "kto", "ppo", "value",
            "qwen3", "gemma2"]


def main():
    """Every fixture, or those named on the command line."""
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    for name in sys.argv[1:] or FIXTURES:
        globals()["fixture_" + name]()


if __name__ == "__main__":
    main()
