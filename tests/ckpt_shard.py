# ckpt_shard.py DIR: split DIR/model.safetensors into two shards with an
# index, as the Hub stores large models, keeping the tensors' order.
import json, os, struct, sys

d = sys.argv[1]
raw = open(d + "/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
meta = h.pop("__metadata__", None)
data = raw[8 + n:]
names = sorted(h, key=lambda k: h[k]["data_offsets"][0])
half = len(names) // 2
index = {"metadata": {"total_size": len(data)}, "weight_map": {}}
for k, part in enumerate([names[:half], names[half:]]):
    fname = "model-%05d-of-00002.safetensors" % (k + 1)
    head, blobs, off = {"__metadata__": meta}, [], 0
    for name in part:
        b, e = h[name]["data_offsets"]
        head[name] = dict(h[name], data_offsets=[off, off + e - b])
        blobs.append(data[b:e])
        off += e - b
        index["weight_map"][name] = fname
    s = json.dumps(head).encode()
    s += b" " * (-len(s) % 8)
    open(d + "/" + fname, "wb").write(struct.pack("<Q", len(s)) + s + b"".join(blobs))
json.dump(index, open(d + "/model.safetensors.index.json", "w"))
os.remove(d + "/model.safetensors")
