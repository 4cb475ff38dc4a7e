# merge_fixture.py make DIR NAME=V,V,...[:R,C] ... [--tok WORD]: a tiny
#   checkpoint of F32 tensors (shape [n] or [R, C]) with a config.json and,
#   with --tok, a tokenizer.json whose vocabulary holds WORD.
# merge_fixture.py get DIR NAME: the tensor's values, space-separated, as
#   the shortest decimals that round-trip through float32.
# Plain Python (struct, array): no numpy to import, so each call is quick.
import array, decimal, json, os, struct, sys

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]

def short(x):
    for p in range(1, 10):
        s = "%.*g" % (p, x)
        if f32(float(s)) == x:
            break
    return format(decimal.Decimal(s), "f")

def make(d, specs):
    os.makedirs(d, exist_ok=True)
    tok = None
    if "--tok" in specs:
        i = specs.index("--tok")
        tok = specs[i + 1]
        del specs[i:i + 2]
    header, blobs, off = {}, [], 0
    for s in specs:
        name, vals = s.split("=")
        shape = None
        if ":" in vals:
            vals, sh = vals.split(":")
            shape = [int(x) for x in sh.split(",")]
        a = array.array("f", [float(x) for x in vals.split(",")])
        shape = shape or [len(a)]
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(d + "/model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    json.dump({"model_type": "test", "hidden_size": 4},
              open(d + "/config.json", "w"))
    if tok:
        json.dump({"model": {"type": "BPE", "vocab": {tok: 0}},
                   "added_tokens": []}, open(d + "/tokenizer.json", "w"))

def get(d, name):
    raw = open(d + "/model.safetensors", "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    e = json.loads(raw[8:8 + n])[name]
    b, f = e["data_offsets"]
    assert e["dtype"] == "F32"
    a = array.array("f", raw[8 + n + b:8 + n + f])
    print(" ".join(short(x) for x in a))

assert sys.byteorder == "little"
if sys.argv[1] == "make":
    make(sys.argv[2], sys.argv[3:])
else:
    get(sys.argv[2], sys.argv[3])
