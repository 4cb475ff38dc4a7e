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
elif mode == "missing":
    del h["model.norm.weight"]
    out = header(h) + data
elif mode == "hugelen":
    out = struct.pack("<Q", 1 << 40) + raw[8:]
else:
    sys.exit("unknown mode " + mode)
open(path, "wb").write(out)
