# ckpt_safetensors.py DIR[:BF16DIR] ...: read DIR/model.safetensors the way
# any safetensors reader must (8-byte length, JSON header, contiguous data),
# with json and torch only, and check it against DIR/config.json.  With
# BF16DIR, check that its tensors are DIR's rounded to bfloat16 by torch
# (round to nearest, ties to even), bit for bit.
import json, struct, sys
import torch

def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "header not padded to 8 bytes"
    header = json.loads(raw[8:8 + n])
    assert header.pop("__metadata__") == {"format": "pt"}
    data = raw[8 + n:]
    out, end = {}, 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, f = e["data_offsets"]
        assert b == end, name + ": hole or overlap"
        end = f
        dt = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}[e["dtype"]]
        t = torch.frombuffer(bytearray(data[b:f]), dtype=dt) if f > b else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"])
    assert end == len(data), "trailing bytes"
    return out

def check(d, bd):
    cfg = json.load(open(d + "/config.json"))
    t = load(d + "/model.safetensors")
    V, C = cfg["vocab_size"], cfg["hidden_size"]
    assert tuple(t["model.embed_tokens.weight"].shape) == (V, C)
    assert ("lm_head.weight" in t) != cfg.get("tie_word_embeddings", False)
    for l in range(cfg["num_hidden_layers"]):
        w = t["model.layers.%d.mlp.up_proj.weight" % l]
        assert tuple(w.shape) == (cfg["intermediate_size"], C)
        assert torch.all(t["model.layers.%d.input_layernorm.weight" % l] == 1)
    std = t["model.embed_tokens.weight"].float().std().item()
    assert 0.015 < std < 0.025, std
    if bd:
        b = load(bd + "/model.safetensors")
        for name, x in t.items():
            y = x.to(torch.bfloat16)
            assert b[name].dtype == torch.bfloat16
            assert torch.equal(y.view(torch.int16), b[name].view(torch.int16)), name

for arg in sys.argv[1:]:
    d, _, bd = arg.partition(":")
    check(d, bd)
