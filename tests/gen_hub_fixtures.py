# gen_hub_fixtures.py DIR: small checkpoints in the shapes the Hugging Face
# Hub holds them, each kind prefpipe must load (tests/unit_hub_ckpt.c,
# tests/ckpt_hub.sh):
#   tied_embed/      tied embeddings as transformers' save_pretrained writes
#                    them: model.embed_tokens.weight only
#   tied_alias/      the shared matrix only as lm_head.weight, __metadata__
#                    naming model.embed_tokens.weight as its alias (what
#                    safetensors' save_model keeps; raincandy-u/TinyStories-656K)
#   tied_head/       lm_head.weight only, no alias
#   untied/          both matrices
#   sharded/         untied in two shards with model.safetensors.index.json
#   bf16/            untied, stored as BF16, torch_dtype bfloat16
# Every weight is k/1024 with |k| <= 127, exact in bf16, so all the untied
# kinds hold the same fp32 values, and so do the tied ones.  Plain Python
# (json, struct): run it again to regenerate the committed files.
import json, os, struct, sys

V, C, L, H, KV, F, CTX = 32, 8, 1, 2, 1, 16, 64
HD = C // H

def tensors(tied):
    t = [("model.embed_tokens.weight", [V, C])]
    for l in range(L):
        p = "model.layers.%d." % l
        t += [(p + "input_layernorm.weight", [C]),
              (p + "self_attn.q_proj.weight", [H * HD, C]),
              (p + "self_attn.k_proj.weight", [KV * HD, C]),
              (p + "self_attn.v_proj.weight", [KV * HD, C]),
              (p + "self_attn.o_proj.weight", [C, H * HD]),
              (p + "post_attention_layernorm.weight", [C]),
              (p + "mlp.gate_proj.weight", [F, C]),
              (p + "mlp.up_proj.weight", [F, C]),
              (p + "mlp.down_proj.weight", [C, F])]
    t.append(("model.norm.weight", [C]))
    if not tied:
        t.append(("lm_head.weight", [V, C]))
    return t

# The values of tensor name (unit_hub_ckpt.c computes the same).
def values(name, n):
    return [((i * 37 + len(name) * 11) % 255 - 127) / 1024 for i in range(n)]

def count(shape):
    n = 1
    for d in shape:
        n *= d
    return n

def bf16(x):
    return struct.pack("<f", x)[2:]      # exact: the low half is zero

# One safetensors file as the safetensors library lays it out: the header
# (__metadata__ first) padded with spaces to 8 bytes, data in header order.
def safetensors(path, items, meta, dtype="F32"):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, shape, vals in sorted(items):
        if dtype == "F32":
            b = struct.pack("<%df" % len(vals), *vals)
        else:
            b = b"".join(bf16(v) for v in vals)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return off

def config(tied, dtype="float32"):
    # A Llama-2-style config.json as transformers 4.4x writes it, with
    # keys prefpipe does not use (pretraining_tp, _name_or_path, ...).
    return {
        "_name_or_path": "prefpipe/hub-fixture",
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
        "hidden_size": C, "initializer_range": 0.02,
        "intermediate_size": F, "max_position_embeddings": CTX,
        "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": H, "num_hidden_layers": L,
        "num_key_value_heads": KV, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0,
        "tie_word_embeddings": tied, "torch_dtype": dtype,
        "transformers_version": "4.46.3", "use_cache": True,
        "vocab_size": V}

def write(d, cfg, files):
    os.makedirs(d, exist_ok=True)
    with open(d + "/config.json", "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(d + "/generation_config.json", "w") as f:
        json.dump({"_from_model_config": True, "bos_token_id": 1,
                   "eos_token_id": 2, "transformers_version": "4.46.3"},
                  f, indent=2)
        f.write("\n")
    for name, st in files:
        safetensors(d + "/" + name, *st)

def items(tied, rename=None):
    out = []
    for name, shape in tensors(tied):
        vals = values(name, count(shape))
        out.append((rename.get(name, name) if rename else name, shape, vals))
    return out

top = sys.argv[1]
pt = {"format": "pt"}
write(top + "/tied_embed", config(True),
      [("model.safetensors", (items(True), pt))])
head = {"model.embed_tokens.weight": "lm_head.weight"}
write(top + "/tied_alias", config(True),
      [("model.safetensors", (items(True, head),
                              dict(pt, **{"model.embed_tokens.weight":
                                          "lm_head.weight"})))])
write(top + "/tied_head", config(True),
      [("model.safetensors", (items(True, head), pt))])
write(top + "/untied", config(False),
      [("model.safetensors", (items(False), pt))])
write(top + "/bf16", config(False, "bfloat16"),
      [("model.safetensors", (items(False), pt, "BF16"))])

# Shards: the embedding and the layers in the first, the rest in the
# second, and the index the Hub's sharded checkpoints carry.
all_items = items(False)
first = [x for x in all_items if not x[0].startswith(("lm_head",
                                                      "model.norm"))]
second = [x for x in all_items if x not in first]
names = ["model-00001-of-00002.safetensors",
         "model-00002-of-00002.safetensors"]
write(top + "/sharded", config(False),
      [(names[0], (first, pt)), (names[1], (second, pt))])
total = sum(4 * len(x[2]) for x in all_items)
wm = {x[0]: names[0] for x in first}
wm.update({x[0]: names[1] for x in second})
with open(top + "/sharded/model.safetensors.index.json", "w") as f:
    json.dump({"metadata": {"total_size": total},
               "weight_map": dict(sorted(wm.items()))}, f, indent=2)
    f.write("\n")
