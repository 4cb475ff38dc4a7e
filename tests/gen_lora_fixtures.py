#!/usr/bin/python3
"""gen_lora_fixtures.py: one LoRA optimizer step of SFT and of DPO,
computed independently in PyTorch, for tests/train_lora_fixtures.sh.

The math is LoRA's own: each target projection's weight becomes
W + (alpha/r) B A, with W the frozen base's, A (r, in) and B (out, r)
trained; the network is tests/gen_model_fixtures.py's, run in float64
from float32 weights on the base of tests/gen_train_fixtures.py
(fixtures/train/init, a Qwen2 causal LM with q/k/v biases).  The
optimizer is torch.optim.AdamW over the adapters (and, for SFT, lm_head as
PEFT's modules_to_save), every one decayed, the gradient clipped with
clip_grad_norm_.

The starting adapters are PEFT adapter directories, NAME_init/
(adapter_config.json, adapter_model.safetensors with PEFT's names
base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight), whose
base_model_name_or_path is ../../train/init, relative to the adapter.  A
and B are both drawn nonzero here (PEFT's B = 0 would leave A's first
gradient zero).  For each NAME in sft, dpo it writes under
tests/fixtures/lora/:

    NAME_init/               the adapter to start from
    NAME.jsonl               the input records
    NAME.args                train-step's options
    NAME.expect.json         loss and grad_norm of the step
    NAME.expect.safetensors  the adapter's tensors after the update

The DPO records carry no reference log-probs: the reference is the base
with the adapters off, as TRL computes it for a PEFT model.

Run it with Debian's interpreter, from the top of the tree:
    /usr/bin/python3 tests/gen_lora_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_model_fixtures as gm  # noqa: E402
import gen_train_fixtures as gt  # noqa: E402

OUT = os.path.join(HERE, "fixtures", "lora")
PREFIX = "base_model.model."
PROJ = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
        "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp",
        "down_proj": "mlp"}


def adapters(w, targets, r, seed):
    """{name of W: (A, B)} leaf tensors, float32 values, both nonzero."""
    rng = gm.Rng(seed)
    out = {}
    for i in range(gt.CFG["num_hidden_layers"]):
        for t in targets:
            name = "model.layers.%d.%s.%s.weight" % (i, PROJ[t], t)
            O, K = w[name].shape
            a = np.array([np.float32(0.3 * rng.normal())
                          for _ in range(r * K)], np.float32).reshape(r, K)
            b = np.array([np.float32(0.3 * rng.normal())
                          for _ in range(O * r)], np.float32).reshape(O, r)
            out[name] = (torch.tensor(a, dtype=torch.float64,
                                      requires_grad=True),
                         torch.tensor(b, dtype=torch.float64,
                                      requires_grad=True))
    return out


def effective(w, ad, s, extra=None):
    """The weights the adapted network computes with: W + s B A."""
    v = {n: t.detach() for n, t in w.items()}
    for n, (a, b) in ad.items():
        v[n] = v[n] + s * (b @ a)
    for n, t in (extra or {}).items():
        v[n] = t
    return v


def trained(ad, extra):
    """(PEFT name, tensor) of every trained tensor, in a fixed order."""
    out = []
    for n, (a, b) in ad.items():
        stem = n[:-len(".weight")]
        out.append((PREFIX + stem + ".lora_A.weight", a))
        out.append((PREFIX + stem + ".lora_B.weight", b))
    for n, t in extra.items():
        out.append((PREFIX + n, t))
    return out


def save_adapter(path, targets, r, alpha, modules, tensors):
    os.makedirs(path, exist_ok=True)
    cfg = dict(base_model_name_or_path="../../train/init", bias="none",
               fan_in_fan_out=False, inference_mode=True,
               init_lora_weights=True, lora_alpha=alpha, lora_dropout=0.0,
               modules_to_save=modules, peft_type="LORA", r=r,
               target_modules=targets, task_type="CAUSAL_LM",
               use_dora=False, use_rslora=False)
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    gm.save_safetensors(os.path.join(path, "adapter_model.safetensors"),
                        [(n, t.detach().numpy().astype(np.float32))
                         for n, t in tensors])


def step(tensors, loss, clip):
    """Backward, clip, one AdamW update (all decayed)."""
    loss.backward()
    params = [t for _, t in tensors]
    gn = torch.nn.utils.clip_grad_norm_(params, clip)
    opt = torch.optim.AdamW(params, lr=gt.LR, betas=(gt.B1, gt.B2),
                            eps=gt.EPS, weight_decay=gt.WD)
    opt.step()
    return loss.item(), gn.item()


def write(name, records, args, tensors, loss, gn):
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
                         for n, t in tensors])
    print("%s: loss %.6f grad_norm %.6f" % (name, loss, gn), file=sys.stderr)


def fixture_sft():
    """Every target, r 2, alpha 3, lm_head trained whole too."""
    w, _ = gt.init(gt.CFG, False)
    targets = list(PROJ)
    r, alpha = 2, 3
    ad = adapters(w, targets, r, 77)
    extra = {"lm_head.weight": w["lm_head.weight"].detach().clone()
             .requires_grad_(True)}
    save_adapter(os.path.join(OUT, "sft_init"), targets, r, alpha,
                 ["lm_head"], trained(ad, extra))
    recs = [dict(prompt_tokens=[1] + gt.walk(1, 4),
                 response_tokens=gt.walk(2, 5)),
            dict(prompt_tokens=[1] + gt.walk(3, 2),
                 response_tokens=gt.walk(4, 7))]
    v = effective(w, ad, alpha / r, extra)
    nll, ntok = 0, 0
    for rec in recs:
        lp = gt.token_logprobs(v, rec["prompt_tokens"],
                               rec["response_tokens"])
        nll = nll - lp.sum()
        ntok += len(lp)
    tensors = trained(ad, extra)
    loss, gn = step(tensors, nll / ntok, 1.0)
    write("sft", recs, gt.COMMON + ["--loss", "sft", "--batch-size", "2",
                                    "--clip-grad", "1.0"],
          tensors, loss, gn)


def fixture_dpo():
    """q_proj and v_proj, r 4, alpha 8; the base is the reference."""
    w, _ = gt.init(gt.CFG, False)
    targets = ["q_proj", "v_proj"]
    r, alpha, beta = 4, 8, 0.5
    ad = adapters(w, targets, r, 78)
    save_adapter(os.path.join(OUT, "dpo_init"), targets, r, alpha, None,
                 trained(ad, {}))
    v = effective(w, ad, alpha / r)
    base = {n: t.detach() for n, t in w.items()}
    recs, loss = [], 0
    for i in range(3):
        p = [1] + gt.walk(10 + i, 3 + i)
        yw, yl = gt.walk(20 + i, 4 + i) + [2], gt.walk(30 + i, 6 - i) + [2]
        lw = gt.token_logprobs(v, p, yw).sum()
        ll = gt.token_logprobs(v, p, yl).sum()
        rw = gt.token_logprobs(base, p, yw).sum()
        rl = gt.token_logprobs(base, p, yl).sum()
        recs.append(dict(id="p%d" % i, prompt_tokens=p,
                         chosen=dict(response_tokens=yw),
                         rejected=dict(response_tokens=yl)))
        z = beta * ((lw - rw) - (ll - rl))
        loss = loss - torch.nn.functional.logsigmoid(z)
    tensors = trained(ad, {})
    loss, gn = step(tensors, loss / len(recs), 0.5)
    write("dpo", recs, gt.COMMON + [
        "--loss", "dpo", "--batch-size", "3", "--micro-batch", "2",
        "--beta", str(beta), "--clip-grad", "0.5"], tensors, loss, gn)


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    for name in sys.argv[1:] or ["sft", "dpo"]:
        globals()["fixture_" + name]()


if __name__ == "__main__":
    main()
