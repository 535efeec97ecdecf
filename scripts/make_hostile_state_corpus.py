#!/usr/bin/env python3
"""Writes tests/data/hostile/: damaged, malicious and mismatched optimizer-state files.

Every file targets the same optimizer, the one tests/hostile_state_test.cpp builds: Adam with
learning_rate 0.01 and two float32 parameters, "w" of shape (2, 3) and "b" of shape (3,). A few
control files are valid and must load; every other one must be refused with the status listed in
manifest.json, a message containing the listed text, and no change to the optimizer.

Standard library only. Run from anywhere:  python3 scripts/make_hostile_state_corpus.py
The output is deterministic; the files are committed, so rerun only when adding cases.
"""

import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "hostile")


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def f64(*values):
    return struct.pack("<%dd" % len(values), *values)


def u64(*values):
    return struct.pack("<%dQ" % len(values), *values)


def i64(*values):
    return struct.pack("<%dq" % len(values), *values)


def seq(n, start):
    return [start + 0.25 * i for i in range(n)]


# The valid state: (name, dtype, shape, bytes), in the order MLX writes keys (sorted).
BASE = [
    ("b.m", "F32", [3], f32(*seq(3, 1.0))),
    ("b.v", "F32", [3], f32(*seq(3, 2.0))),
    ("learning_rate", "F32", [], f32(0.01)),
    ("step", "U64", [], u64(7)),
    ("w.m", "F32", [2, 3], f32(*seq(6, -1.0))),
    ("w.v", "F32", [2, 3], f32(*seq(6, 0.5))),
]

DESCENT_META = {
    "format": "descent",
    "format_version": "1",
    "kind": "adam",
    "config": json.dumps({"learning_rate": 0.01}),
    "descent_version": "0.1.0",
}


def header_and_blob(tensors, metadata=None, with_metadata=True):
    header = {}
    if with_metadata:
        header["__metadata__"] = metadata
    blob = b""
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    return header, blob


def pack(header_text, blob, length=None):
    if isinstance(header_text, str):
        header_text = header_text.encode("utf-8")
    n = len(header_text) if length is None else length
    return struct.pack("<Q", n) + header_text + blob


def st(tensors, metadata=None, with_metadata=True):
    header, blob = header_and_blob(tensors, metadata, with_metadata)
    return pack(json.dumps(header, separators=(",", ":")), blob)


def replace(key, **fields):
    """BASE with tensor `key` changed (name, dtype, shape, data) or removed (fields == {})."""
    out = []
    for n, d, s, b in BASE:
        if n == key:
            if not fields:
                continue
            out.append((fields.get("name", n), fields.get("dtype", d), fields.get("shape", s), fields.get("data", b)))
        else:
            out.append((n, d, s, b))
    return out


def edit_header(edit, metadata=None):
    """BASE serialised, after edit(header_dict) changes the header (the blob is kept)."""
    header, blob = header_and_blob(BASE, metadata)
    edit(header)
    return pack(json.dumps(header, separators=(",", ":")), blob)


def raw_header(text, blob=None):
    _, base_blob = header_and_blob(BASE)
    return pack(text, base_blob if blob is None else blob)


def descent_meta(**changes):
    meta = dict(DESCENT_META)
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    return meta


VALID = st(BASE)
DEEP = 10000  # nesting for the deep-JSON cases (deep_array uses 100000); valid headers need 3
BASE_HEADER_TEXT = json.dumps(header_and_blob(BASE)[0], separators=(",", ":"))
BLOB = header_and_blob(BASE)[1]

CASES = []  # (file, status, mention, about, bytes)


def case(name, status, mention, about, data):
    CASES.append((name + ".safetensors", status, mention, about, data))


OK = "DESCENT_OK"
CORRUPT = "DESCENT_ERR_CORRUPT"

# ---- controls: valid files that must load (step 7) ----
case("valid_mlx", OK, "", "Valid, as MLX writes it (\"__metadata__\": null, keys sorted).", VALID)
case("valid_descent", OK, "", "Valid, with descent's metadata (format, format_version, kind, config).",
     st(BASE, DESCENT_META))
case("valid_no_metadata", OK, "", "Valid, without a \"__metadata__\" entry at all.", st(BASE, with_metadata=False))
case("valid_foreign_metadata", OK, "", "Valid, metadata of another writer ({\"format\": \"pt\"}): state only.",
     st(BASE, {"format": "pt"}))
case("valid_padded_header", OK, "", "Valid, header padded with trailing spaces to 8-byte alignment.",
     pack(BASE_HEADER_TEXT + " " * ((8 - (8 + len(BASE_HEADER_TEXT)) % 8) % 8 or 8), BLOB))
case("valid_step_i64", OK, "", "Valid, step stored as I64 (converted: non-negative).",
     st(replace("step", dtype="I64", data=i64(7))))
case("valid_slot_f16", OK, "", "Valid, w.m stored as F16 (MLX keeps a half-precision parameter's state in its dtype): widened exactly into the float32 slot.",
     st(replace("w.m", dtype="F16", data=b"\0\x3c" * 6)))
case("valid_slot_bf16", OK, "", "Valid, w.m stored as BF16: widened exactly into the float32 slot.",
     st(replace("w.m", dtype="BF16", data=b"\x80\x3f" * 6)))
case("valid_lr_f64_exact", OK, "", "Valid, learning_rate stored as F64 0.25 (exact in float32).",
     st(replace("learning_rate", dtype="F64", data=f64(0.25))))

# ---- the container: lengths and truncation ----
case("empty", CORRUPT, "too short", "Zero bytes.", b"")
case("truncated_length", CORRUPT, "too short", "Five bytes: the header length itself is cut.", VALID[:5])
case("truncated_header", CORRUPT, "runs past the end", "Cut in the middle of the JSON header.", VALID[:60])
case("truncated_data", CORRUPT, "run past the end of the data", "The last 4 data bytes are missing.", VALID[:-4])
case("header_length_zero", CORRUPT, "header length is 0", "Header length 0.", pack("", BLOB, length=0))
case("header_length_2pow63", CORRUPT, "runs past the end", "Header length 2^63.",
     pack(BASE_HEADER_TEXT, BLOB, length=2**63))
case("header_length_max", CORRUPT, "runs past the end", "Header length 2^64-1.",
     pack(BASE_HEADER_TEXT, BLOB, length=2**64 - 1))
case("header_length_short", CORRUPT, "not valid JSON", "Header length one byte short of the JSON.",
     pack(BASE_HEADER_TEXT, BLOB, length=len(BASE_HEADER_TEXT) - 1))

# ---- the header: JSON syntax and structure ----
case("invalid_json", CORRUPT, "not valid JSON", "Header is not JSON ('{\"step\": {').", raw_header('{"step": {'))
case("invalid_utf8_key", CORRUPT, "not valid JSON", "A key with an invalid UTF-8 byte (0xff).",
     raw_header(BASE_HEADER_TEXT.replace('"w.m"', '"w.\xff"').encode("latin-1")))
case("trailing_garbage", CORRUPT, "not valid JSON", "Non-space bytes after the JSON object.",
     raw_header(BASE_HEADER_TEXT + "x"))
case("nul_padding", CORRUPT, "not valid JSON", "Header padded with NUL bytes instead of spaces.",
     raw_header(BASE_HEADER_TEXT.encode() + b"\0" * 4))
case("two_objects", CORRUPT, "not valid JSON", "Two JSON objects in the header.", raw_header(BASE_HEADER_TEXT + "{}"))
case("header_array", CORRUPT, "must be a JSON object", "Header is a JSON array.", raw_header("[]"))
case("header_string", CORRUPT, "must be a JSON object", "Header is a JSON string.", raw_header('"step"'))
case("header_null", CORRUPT, "must be a JSON object", "Header is JSON null.", raw_header("null"))
case("header_number", CORRUPT, "must be a JSON object", "Header is a JSON number.", raw_header("8"))
case("deep_array", CORRUPT, "must be a JSON object", "100000 nested '[' (stack exhaustion attempt).",
     raw_header("[" * 100000 + "]" * 100000))
case("deep_array_unclosed", CORRUPT, "must be a JSON object", "10000 '[' never closed.",
     raw_header("[" * DEEP))
case("deep_object", CORRUPT, "unknown field", "10000 nested objects {\"a\":{\"a\":...}}.",
     raw_header('{"a":' * DEEP + "{}" + "}" * DEEP))
case("deep_metadata", CORRUPT, "must be a string", "Deeply nested value inside __metadata__.",
     raw_header('{"__metadata__":{"k":' + "[" * DEEP + "]" * DEEP + "}}"))
case("deep_shape", CORRUPT, "shape must hold integers", "Deeply nested arrays as a shape.",
     raw_header('{"w.m":{"dtype":"F32","shape":' + "[" * DEEP + "]" * DEEP + ',"data_offsets":[0,24]}}'))
case("empty_header_object", "DESCENT_ERR_UNKNOWN_KEY", "missing from the file",
     "Header {} with no data: valid safetensors holding nothing, so the optimizer's state is missing.",
     pack("{}", b""))

# ---- duplicate keys ----
case("duplicate_tensor", CORRUPT, "appears twice", "The key \"step\" twice.",
     raw_header(BASE_HEADER_TEXT[:-1] + ',"step":{"dtype":"U64","shape":[],"data_offsets":[0,8]}}'))
case("duplicate_metadata_section", CORRUPT, "appears twice", "\"__metadata__\" twice.",
     raw_header(BASE_HEADER_TEXT[:-1] + ',"__metadata__":{"format":"pt"}}'))
case("duplicate_metadata_key", CORRUPT, "appears twice", "A metadata key twice.",
     raw_header(BASE_HEADER_TEXT.replace('"__metadata__":null', '"__metadata__":{"kind":"adam","kind":"sgd"}')))
case("duplicate_field", CORRUPT, "given twice", "\"dtype\" twice in one tensor.",
     raw_header(BASE_HEADER_TEXT.replace('"w.m":{"dtype":"F32"', '"w.m":{"dtype":"F32","dtype":"F64"')))

# ---- __metadata__ of the wrong type ----
case("metadata_number", CORRUPT, "\"__metadata__\" must be an object", "\"__metadata__\": 5.",
     raw_header(BASE_HEADER_TEXT.replace('"__metadata__":null', '"__metadata__":5')))
case("metadata_array", CORRUPT, "\"__metadata__\" must be an object", "\"__metadata__\": [].",
     raw_header(BASE_HEADER_TEXT.replace('"__metadata__":null', '"__metadata__":[]')))
case("metadata_string", CORRUPT, "\"__metadata__\" must be an object", "\"__metadata__\": \"descent\".",
     raw_header(BASE_HEADER_TEXT.replace('"__metadata__":null', '"__metadata__":"descent"')))
case("metadata_value_number", CORRUPT, "must be a string", "A metadata value that is a number.",
     raw_header(BASE_HEADER_TEXT.replace('"__metadata__":null', '"__metadata__":{"format_version":1}')))
case("metadata_value_null", CORRUPT, "must be a string", "A metadata value that is null.",
     raw_header(BASE_HEADER_TEXT.replace('"__metadata__":null', '"__metadata__":{"format":null}')))
case("metadata_value_object", CORRUPT, "must be a string", "A metadata value that is an object.",
     raw_header(BASE_HEADER_TEXT.replace('"__metadata__":null', '"__metadata__":{"config":{"learning_rate":1}}')))

# ---- tensor entries ----
def set_field(tensor, field, value):
    def edit(h):
        h[tensor][field] = value
    return edit


def del_field(tensor, field):
    def edit(h):
        del h[tensor][field]
    return edit


case("entry_number", CORRUPT, "must be an object", "A tensor entry that is a number (\"step\": 7).",
     raw_header(BASE_HEADER_TEXT.replace('"step":{"dtype":"U64","shape":[],"data_offsets":[28,36]}', '"step":7')))
case("entry_null", CORRUPT, "must be an object", "A tensor entry that is null.",
     raw_header(BASE_HEADER_TEXT.replace('"step":{"dtype":"U64","shape":[],"data_offsets":[28,36]}', '"step":null')))
case("missing_dtype", CORRUPT, "missing field \"dtype\"", "A tensor without \"dtype\".", edit_header(del_field("w.m", "dtype")))
case("missing_shape", CORRUPT, "missing field \"shape\"", "A tensor without \"shape\".", edit_header(del_field("w.m", "shape")))
case("missing_data_offsets", CORRUPT, "missing field \"data_offsets\"", "A tensor without \"data_offsets\".",
     edit_header(del_field("w.m", "data_offsets")))
case("unknown_field", CORRUPT, "unknown field", "A tensor with an extra field \"stride\".",
     edit_header(set_field("w.m", "stride", [3, 1])))
case("unknown_dtype", CORRUPT, "unknown dtype", "dtype \"F33\".", edit_header(set_field("w.m", "dtype", "F33")))
case("dtype_lowercase", CORRUPT, "unknown dtype", "dtype \"f32\" (dtypes are upper case).",
     edit_header(set_field("w.m", "dtype", "f32")))
case("dtype_empty", CORRUPT, "unknown dtype", "dtype \"\".", edit_header(set_field("w.m", "dtype", "")))
case("dtype_number", CORRUPT, "dtype must be a string", "dtype 32.", edit_header(set_field("w.m", "dtype", 32)))
case("shape_negative", CORRUPT, "negative", "Shape [-2, -3].", edit_header(set_field("w.m", "shape", [-2, -3])))
case("shape_float", CORRUPT, "integers", "Shape [2.0, 3.0].", raw_header(BASE_HEADER_TEXT.replace('"shape":[2,3]', '"shape":[2.0,3.0]', 1)))
case("shape_string", CORRUPT, "shape must be an array", "Shape \"2x3\".", edit_header(set_field("w.m", "shape", "2x3")))
case("shape_nested", CORRUPT, "integers", "Shape [[2, 3]].", edit_header(set_field("w.m", "shape", [[2, 3]])))
case("shape_product_overflow", CORRUPT, "too many elements", "Shape [2^32, 2^32, 16]: the element count overflows 64 bits.",
     edit_header(set_field("w.m", "shape", [2**32, 2**32, 16])))
case("shape_bytes_overflow", CORRUPT, "too many elements", "Shape [2^62, 2]: the element count fits, the byte count does not.",
     edit_header(set_field("w.m", "shape", [2**62, 2])))
case("shape_dimension_past_int64", CORRUPT, "too many elements", "A dimension of 2^63.",
     edit_header(set_field("w.m", "shape", [2**63])))
case("shape_dimension_past_uint64", CORRUPT, "integers", "A dimension of 2^64 (not a 64-bit integer).",
     raw_header(BASE_HEADER_TEXT.replace('"shape":[2,3]', '"shape":[18446744073709551616,3]', 1)))
case("shape_too_many_dimensions", CORRUPT, "more than 64 dimensions", "65 dimensions of size 1.",
     edit_header(set_field("w.m", "shape", [1] * 65)))
case("shape_zero_size", CORRUPT, "needs 0", "Shape [0, 3] while data_offsets cover 24 bytes.",
     edit_header(set_field("w.m", "shape", [0, 3])))

# ---- data_offsets ----
def offsets(tensor, value):
    return edit_header(set_field(tensor, "data_offsets", value))


case("offsets_past_end", CORRUPT, "run past the end", "data_offsets beyond the data.", offsets("w.v", [72, 96]))
case("offsets_huge", CORRUPT, "run past the end", "data_offsets [0, 2^64-1].", offsets("w.m", [0, 2**64 - 1]))
case("offsets_reversed", CORRUPT, "end before they begin", "data_offsets [60, 36].", offsets("w.m", [60, 36]))
case("offsets_wrapping", CORRUPT, "end before they begin", "data_offsets [2^64-8, 16] (wraps if added carelessly).",
     offsets("w.m", [2**64 - 8, 16]))
case("offsets_overlap", CORRUPT, "overlap", "Two tensors sharing bytes (w.m moved onto b.v).",
     raw_header(BASE_HEADER_TEXT.replace('"data_offsets":[36,60]', '"data_offsets":[12,36]')))
case("offsets_gap", CORRUPT, "belong to no tensor", "A hole in the data between two tensors (8 unused bytes).",
     raw_header(BASE_HEADER_TEXT.replace('"data_offsets":[60,84]', '"data_offsets":[68,92]'), BLOB + b"\0" * 8))
case("offsets_trailing_bytes", CORRUPT, "trailing bytes", "8 bytes after the last tensor.", raw_header(BASE_HEADER_TEXT, BLOB + b"\0" * 8))
case("offsets_wrong_size", CORRUPT, "needs 24", "data_offsets cover 20 bytes for a (2, 3) F32 tensor.",
     offsets("w.m", [36, 56]))
case("offsets_three", CORRUPT, "exactly two", "data_offsets with three numbers.", offsets("w.m", [36, 48, 60]))
case("offsets_one", CORRUPT, "exactly two", "data_offsets with one number.", offsets("w.m", [36]))
case("offsets_negative", CORRUPT, "negative", "data_offsets [-8, 16].", offsets("w.m", [-8, 16]))
case("offsets_float", CORRUPT, "integers", "data_offsets [36.0, 60.0].", offsets("w.m", [36.0, 60.0]))
case("offsets_not_array", CORRUPT, "data_offsets must be an array", "data_offsets \"36-60\".", offsets("w.m", "36-60"))

# ---- well-formed files that do not fit the optimizer ----
case("slot_dtype_f64", "DESCENT_ERR_DTYPE_MISMATCH", "F64", "w.m stored as F64 (the parameter is float32).",
     st(replace("w.m", dtype="F64", data=f64(*seq(6, -1.0)))))
case("lr_dtype_bf16", "DESCENT_ERR_DTYPE_MISMATCH", "BF16",
     "learning_rate stored as BF16 (descent holds it in float32, as MLX does).",
     st(replace("learning_rate", dtype="BF16", data=b"\x80\x3f")))
case("slot_dtype_i32", "DESCENT_ERR_DTYPE_MISMATCH", "I32", "w.m stored as I32.",
     st(replace("w.m", dtype="I32", data=struct.pack("<6i", *range(6)))))
case("slot_shape_transposed", "DESCENT_ERR_SHAPE_MISMATCH", "w.m", "w.m of shape (3, 2) instead of (2, 3).",
     st(replace("w.m", shape=[3, 2])))
case("slot_shape_flat", "DESCENT_ERR_SHAPE_MISMATCH", "w.m", "w.m of shape (6,) instead of (2, 3).",
     st(replace("w.m", shape=[6])))
case("slot_unknown", "DESCENT_ERR_UNKNOWN_KEY", "x.m", "An extra tensor \"x.m\" the optimizer does not have.",
     st(BASE + [("x.m", "F32", [3], f32(1, 2, 3))]))
case("slot_misspelt", "DESCENT_ERR_UNKNOWN_KEY", "w.mm", "\"w.m\" spelt \"w.mm\".", st(replace("w.m", name="w.mm")))
case("slot_name_with_nul", "DESCENT_ERR_UNKNOWN_KEY", "\\x00", "\"w.m\" followed by a NUL and more characters.",
     st(replace("w.m", name="w.m\0x")))
case("slot_missing", "DESCENT_ERR_UNKNOWN_KEY", "b.v", "No \"b.v\".", st(replace("b.v")))
case("step_missing", "DESCENT_ERR_UNKNOWN_KEY", "step", "No \"step\".", st(replace("step")))
case("step_float", "DESCENT_ERR_DTYPE_MISMATCH", "step", "step stored as F32 7.0.", st(replace("step", dtype="F32", data=f32(7))))
case("step_bool", "DESCENT_ERR_DTYPE_MISMATCH", "step", "step stored as BOOL.", st(replace("step", dtype="BOOL", data=b"\1")))
case("step_negative", "DESCENT_ERR_OUT_OF_RANGE", "negative", "step stored as I64 -7.", st(replace("step", dtype="I64", data=i64(-7))))
case("step_vector", "DESCENT_ERR_SHAPE_MISMATCH", "step", "step of shape (2,).", st(replace("step", shape=[2], data=u64(7, 7))))
case("lr_nan", "DESCENT_ERR_OUT_OF_RANGE", "learning_rate", "learning_rate NaN.", st(replace("learning_rate", data=f32(float("nan")))))
case("lr_inf", "DESCENT_ERR_OUT_OF_RANGE", "learning_rate", "learning_rate +inf.", st(replace("learning_rate", data=f32(float("inf")))))
case("lr_f64_inexact", "DESCENT_ERR_DTYPE_MISMATCH", "float32", "learning_rate F64 0.1 (not exact in float32).",
     st(replace("learning_rate", dtype="F64", data=f64(0.1))))
case("lr_vector", "DESCENT_ERR_SHAPE_MISMATCH", "learning_rate", "learning_rate of shape (1,).",
     st(replace("learning_rate", shape=[1])))

# ---- descent metadata ----
case("descent_wrong_kind", "DESCENT_ERR_INVALID_ARGUMENT", "'sgd'", "descent file of kind \"sgd\" (the target is adam).",
     st(BASE, descent_meta(kind="sgd", config=json.dumps({"learning_rate": 0.01}))))
case("descent_future_version", "DESCENT_ERR_UNSUPPORTED", "format_version 2", "format_version \"2\".",
     st(BASE, descent_meta(format_version="2")))
case("descent_version_garbage", CORRUPT, "not a version number", "format_version \"one\".",
     st(BASE, descent_meta(format_version="one")))
case("descent_missing_version", CORRUPT, "format_version", "No format_version.", st(BASE, descent_meta(format_version=None)))
case("descent_missing_kind", CORRUPT, "kind", "No kind.", st(BASE, descent_meta(kind=None)))
case("descent_missing_config", CORRUPT, "config", "No config.", st(BASE, descent_meta(config=None)))
case("descent_config_not_json", CORRUPT, "not valid JSON", "config \"{learning_rate: 0.01\".",
     st(BASE, descent_meta(config="{learning_rate: 0.01")))
case("descent_config_array", CORRUPT, "must be a JSON object", "config \"[0.01]\".", st(BASE, descent_meta(config="[0.01]")))
case("descent_config_deep", CORRUPT, "nested deeper", "config with 10000 nested objects under learning_rate.",
     st(BASE, descent_meta(config='{"learning_rate":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}")))
case("descent_config_deep_array", CORRUPT, "nested deeper", "config with 10000 nested arrays.",
     st(BASE, descent_meta(config='{"betas":' + "[" * DEEP + "]" * DEEP + "}")))
case("descent_config_unknown_key", "DESCENT_ERR_UNKNOWN_KEY", "bogus", "config with a hyperparameter adam does not have.",
     st(BASE, descent_meta(config=json.dumps({"learning_rate": 0.01, "bogus": 1}))))
case("descent_config_out_of_range", "DESCENT_ERR_OUT_OF_RANGE", "betas", "config with betas [1.5, 0.9].",
     st(BASE, descent_meta(config=json.dumps({"learning_rate": 0.01, "betas": [1.5, 0.9]}))))
case("descent_config_wrong_type", "DESCENT_ERR_WRONG_TYPE", "eps", "config with eps true.",
     st(BASE, descent_meta(config=json.dumps({"learning_rate": 0.01, "eps": True}))))


README_HEAD = """# Hostile optimizer-state files

Damaged, malicious and mismatched safetensors files for `descent_optimizer_load` and
`descent_optimizer_load_from_buffer`, used by `tests/hostile_state_test.cpp`. Generated by
`scripts/make_hostile_state_corpus.py` (standard library only), which also writes
`manifest.json` (file, expected status, a text the error message must contain) and this table;
rerun it after adding a case, never edit the files by hand.

Every file targets one optimizer: Adam with `learning_rate` 0.01 and two float32 parameters,
`w` of shape (2, 3) and `b` of shape (3,). Its valid state is six tensors, `step` (U64, 7),
`learning_rate` (F32), `w.m`, `w.v`, `b.m`, `b.v`. The test loads each file from its path and
from a buffer, into an optimizer that has taken two steps and into a fresh one, and checks:

- the status is the one listed (`OK` for the `valid_*` controls, which must load with step 7);
- on failure the message (per handle and per thread) is new and contains the listed text, and
  names the file when loaded by path;
- on failure the state and hyperparameters are bit for bit as before.

Besides these files the test also refuses every truncation of `valid_mlx` and
`valid_descent`, loads or cleanly refuses every single-byte corruption of them, and refuses a
header over the 100 MB limit (built in memory: too large to keep here). The deep-nesting files
check that parsing never recurses on the input (the header's structure allows three levels; the
parser stops at the first token that does not fit) and that a config nested beyond 64 levels is
refused before anything walks it.

"""


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".safetensors"):
            os.remove(os.path.join(OUT, f))
    manifest = []
    names = set()
    for file, status, mention, about, data in CASES:
        assert file not in names, file
        names.add(file)
        with open(os.path.join(OUT, file), "wb") as fh:
            fh.write(data)
        manifest.append({"file": file, "status": status, "mention": mention, "about": about})
    with open(os.path.join(OUT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, ensure_ascii=True)
        fh.write("\n")
    with open(os.path.join(OUT, "README.md"), "w") as fh:
        fh.write(README_HEAD)
        fh.write("| file | expected | message mentions | what it is |\n|---|---|---|---|\n")
        for file, status, mention, about, data in CASES:
            cell = mention.replace("|", "\\|").replace("`", "'")
            fh.write("| `%s` | %s | %s | %s (%d bytes) |\n" % (
                file, status.replace("DESCENT_", ""), "`%s`" % cell if cell else "", about.replace("|", "\\|"), len(data)))
    total = sum(len(c[4]) for c in CASES)
    print("wrote %d files (%d bytes) to %s" % (len(CASES), total, os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
