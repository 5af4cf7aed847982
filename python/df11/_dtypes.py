"""safetensors dtype strings -> numpy / torch dtypes."""
import numpy as np

_NUMPY = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
    "U32": np.uint32, "I32": np.int32, "U64": np.uint64, "I64": np.int64,
    "F16": np.float16, "F32": np.float32, "F64": np.float64, "C64": np.complex64,
}
# Types numpy lacks: ml_dtypes' type when it is installed, else unsigned bit
# patterns of the same width (the bytes are the original's either way).
_ML_DTYPES = {"BF16": ("bfloat16", np.uint16), "F8_E4M3": ("float8_e4m3fn", np.uint8),
              "F8_E5M2": ("float8_e5m2", np.uint8), "F8_E8M0": ("float8_e8m0fnu", np.uint8),
              "F8_E4M3FNUZ": ("float8_e4m3fnuz", np.uint8), "F8_E5M2FNUZ": ("float8_e5m2fnuz", np.uint8)}
# F4 and F6_E2M3/F6_E3M2 pack several elements a byte: no numpy type holds
# them as stored, so they read as their raw bytes (uint8, original_bytes long).


def numpy_dtype(dtype):
    """numpy dtype for a safetensors dtype string; None if it has no fixed-width one."""
    if dtype in _NUMPY:
        return np.dtype(_NUMPY[dtype])
    if dtype in _ML_DTYPES:
        attr, fallback = _ML_DTYPES[dtype]
        try:
            # Imported on every call, not cached: whether ml_dtypes is present is
            # decided at read time (and tests can hide it).
            import ml_dtypes
            return np.dtype(getattr(ml_dtypes, attr))
        except (ImportError, AttributeError):  # an ml_dtypes without this type
            return np.dtype(fallback)
    return None


def torch_dtype(dtype):
    """torch dtype for a safetensors dtype string (torch must be importable)."""
    import torch
    table = {
        "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
        "I32": torch.int32, "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16,
        "F32": torch.float32, "F64": torch.float64,
        "U16": getattr(torch, "uint16", None), "U32": getattr(torch, "uint32", None),
        "U64": getattr(torch, "uint64", None),
        "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
        "F8_E8M0": getattr(torch, "float8_e8m0fnu", None), "F8_E4M3FNUZ": getattr(torch, "float8_e4m3fnuz", None),
        "F8_E5M2FNUZ": getattr(torch, "float8_e5m2fnuz", None), "C64": torch.complex64,
    }
    return table.get(dtype)
