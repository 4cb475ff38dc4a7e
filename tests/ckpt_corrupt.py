# ckpt_corrupt.py MODE FILE: damage the safetensors FILE in place, one way.
import json, struct, sys

mode, path = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
data = raw[8 + n:]

def header(h):
    s = json.dumps(h, separators=(",", ":")).encode()
    s += b" " * (-len(s) % 8)
    return struct.pack("<Q", len(s)) + s

if mode == "truncate":          # a write cut short
    out = raw[:-100]
elif mode == "notjson":
    out = raw[:8] + b"{" + b"x" * (n - 1) + data
elif mode == "overlap":         # the norm's range slides into its neighbour
    b, e = h["model.norm.weight"]["data_offsets"]
    h["model.norm.weight"]["data_offsets"] = [b - 4, e - 4]
    out = header(h) + data
elif mode == "count":           # shape and byte count disagree
    h["model.norm.weight"]["shape"] = [65]
    out = header(h) + data
elif mode == "dtype":
    h["model.norm.weight"]["dtype"] = "I8"
    out = header(h) + data
elif mode == "missing":         # the tensor and its bytes are gone
    b, e = h.pop("model.norm.weight")["data_offsets"]
    for v in h.values():
        if isinstance(v, dict) and "data_offsets" in v and \
                v["data_offsets"][0] >= e:
            v["data_offsets"] = [x - (e - b) for x in v["data_offsets"]]
    out = header(h) + data[:b] + data[e:]
elif mode == "lenminus":        # the header length one short: JSON still
    s = json.dumps(h, separators=(",", ":")).encode()   # parses, data slides
    s += b" " * (8 - len(s) % 8)
    out = struct.pack("<Q", len(s) - 1) + s + data
elif mode == "lenplus":         # one long: the first data byte joins the
    out = struct.pack("<Q", n + 1) + raw[8:]             # header
elif mode == "gap":             # four bytes nobody owns before the norm
    b, e = h["model.norm.weight"]["data_offsets"]
    for v in h.values():
        if isinstance(v, dict) and "data_offsets" in v and \
                v["data_offsets"][0] >= b:
            v["data_offsets"] = [x + 4 for x in v["data_offsets"]]
    out = header(h) + data[:b] + b"\0" * 4 + data[b:]
elif mode == "trailing":        # bytes after the last tensor
    out = raw + b"\0" * 8
elif mode == "hugelen":
    out = struct.pack("<Q", 1 << 40) + raw[8:]
else:
    sys.exit("unknown mode " + mode)
open(path, "wb").write(out)
