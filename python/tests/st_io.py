"""A tiny pure-numpy safetensors writer and reader, for the tests only (the
`safetensors` package is optional)."""
import json
import os
import struct

import numpy as np

DTYPE_NAMES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64",
               np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8",
               np.dtype(np.bool_): "BOOL", np.dtype(np.float64): "F64", np.dtype(np.int16): "I16"}


def write(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, raw bytes) or (name, ndarray).
    BF16 tensors are given as (name, "BF16", shape, uint16 array's bytes)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for t in tensors:
        if len(t) == 2:
            name, arr = t
            arr = np.ascontiguousarray(arr)
            dtype, shape, raw = DTYPE_NAMES[arr.dtype], list(arr.shape), arr.tobytes()
        else:
            name, dtype, shape, raw = t
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    """{name: (dtype string, shape tuple, raw bytes)} in file order."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, end = e["data_offsets"]
        out[name] = (e["dtype"], tuple(e["shape"]), data[base + b:base + end])
    return out


def read_dir(path):
    """Every tensor of every *.safetensors file in a directory, as read() gives them."""
    out = {}
    for shard in sorted(os.listdir(path)):
        if shard.endswith(".safetensors"):
            out.update(read(os.path.join(path, shard)))
    return out


def bf16_bits(rng, shape, std=0.02):
    """BF16 bit patterns of normal(0, std) values, rounded to nearest even."""
    x = (rng.standard_normal(shape) * std).astype(np.float32)
    u = x.view(np.uint32)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)
