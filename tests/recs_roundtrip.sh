#!/bin/sh
# recs: msgpack <-> JSON round trips, zstd, several inputs, and
# interoperability with another msgpack implementation (python3-msgpack).
. "${top_srcdir:-.}/tests/lib.sh"

cat >"$T/in.jsonl" <<'JSON'
{"id":"a","n":1,"neg":-5,"u64":18446744073709551615,"i64":-9223372036854775808,"f":0.1,"big":1e300,"s":"h\u00e9 \"q\"\n\ttab","e":"","arr":[1,2.5,null,true,false,[]],"m":{"k":"v","deep":{"x":[{}]}},"b":{"$bin":"AAEC/w=="}}

{"id":"b","emoji":"\ud83d\ude00 \u2764\ufe0f","nan":NaN,"inf":-Infinity}
JSON
# The canonical JSON text of the same records.
cat >"$T/want.jsonl" <<'JSON'
{"id":"a","n":1,"neg":-5,"u64":18446744073709551615,"i64":-9223372036854775808,"f":0.1,"big":1e+300,"s":"hé \"q\"\n\ttab","e":"","arr":[1,2.5,null,true,false,[]],"m":{"k":"v","deep":{"x":[{}]}},"b":{"$bin":"AAEC/w=="}}
{"id":"b","emoji":"😀 ❤️","nan":NaN,"inf":-Infinity}
JSON

check "from-json" sh -c 'recs from-json "$1" >"$2"' - "$T/in.jsonl" "$T/a.mpk"
check "to-json" sh -c 'recs to-json "$1" >"$2"' - "$T/a.mpk" "$T/a.jsonl"
same "msgpack -> JSON" "$T/want.jsonl" "$T/a.jsonl"
recs from-json "$T/a.jsonl" >"$T/b.mpk"
same "JSON -> msgpack -> JSON -> msgpack" "$T/a.mpk" "$T/b.mpk"
recs cat "$T/a.mpk" >"$T/c.mpk"
same "cat keeps msgpack bytes" "$T/a.mpk" "$T/c.mpk"

# zstd on output and input, concatenated frames, several operands.
recs cat -z "$T/a.mpk" >"$T/a.mpk.zst"
check "zstd magic" sh -c 'head -c 4 "$1" | od -An -tx1 | grep -q "28 b5 2f fd"' - "$T/a.mpk.zst"
cat "$T/a.mpk.zst" "$T/a.mpk.zst" >"$T/two.zst"
recs to-json "$T/two.zst" >"$T/two.jsonl"
cat "$T/want.jsonl" "$T/want.jsonl" >"$T/want2.jsonl"
same "concatenated zstd frames" "$T/want2.jsonl" "$T/two.jsonl"
recs to-json -z "$T/a.mpk" | zstd -dc >"$T/z.jsonl"
same "JSON Lines, zstd-compressed" "$T/want.jsonl" "$T/z.jsonl"
recs to-json "$T/a.mpk" - "$T/in.jsonl" <"$T/a.mpk.zst" >"$T/three.jsonl"
cat "$T/want.jsonl" "$T/want.jsonl" "$T/want.jsonl" >"$T/want3.jsonl"
same "mixed inputs" "$T/want3.jsonl" "$T/three.jsonl"
printf '' | recs count >"$T/n"
check "empty input has no records" grep -qx 0 "$T/n"

# A JSON Lines stream without a final newline, CRLF line ends.
printf '{"a":1}\r\n{"a":2}' | recs to-json >"$T/crlf"
printf '{"a":1}\n{"a":2}\n' >"$T/crlf.want"
same "CRLF and no final newline" "$T/crlf.want" "$T/crlf"

# Interoperability: python3-msgpack writes what recs reads, and reads
# what recs writes, float32 included (it comes back as float64).
"$PYTHON3" -c 'import msgpack' 2>/dev/null || skip "python3-msgpack missing"
"$PYTHON3" - "$T/py.mpk" <<'PY'
import msgpack, sys
with open(sys.argv[1], "wb") as f:
    p32 = msgpack.Packer(use_single_float=True)
    f.write(msgpack.packb({"id": "x", "u": 2**64 - 1, "i": -2**63,
        "f64": 0.1, "bin": b"\x00\xff", "l": [1, None, True], "m": {"k": 1.5}}))
    f.write(p32.pack({"lp": [0.1, -1.0 / 3]}))
PY
recs to-json "$T/py.mpk" >"$T/py.jsonl"
cat >"$T/py.want" <<'JSON'
{"id":"x","u":18446744073709551615,"i":-9223372036854775808,"f64":0.1,"bin":{"$bin":"AP8="},"l":[1,null,true],"m":{"k":1.5}}
{"lp":[0.1,-0.33333334]}
JSON
same "python3-msgpack -> recs" "$T/py.want" "$T/py.jsonl"
recs from-json "$T/py.jsonl" >"$T/back.mpk"
"$PYTHON3" - "$T/back.mpk" <<'PY' || fail "recs -> python3-msgpack"
import msgpack, sys
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))
assert recs[0] == {"id": "x", "u": 2**64 - 1, "i": -2**63, "f64": 0.1,
    "bin": b"\x00\xff", "l": [1, None, True], "m": {"k": 1.5}}, recs[0]
assert list(recs[0]) == ["id", "u", "i", "f64", "bin", "l", "m"]
# Through JSON, float32 comes back as float64 of its shortest decimal.
assert recs[1]["lp"] == [0.1, -0.33333334], recs[1]
PY
# recs cat keeps float32 as float32.
recs cat "$T/py.mpk" >"$T/cat.mpk"
"$PYTHON3" - "$T/cat.mpk" <<'PY' || fail "recs cat keeps float32"
import msgpack, struct, sys
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
assert recs[1]["lp"] == [f32(0.1), f32(-1.0 / 3)], recs[1]
PY
finish
