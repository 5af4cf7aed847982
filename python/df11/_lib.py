"""ctypes binding of libdf11.so (formats/df11_c.h).

The shared library is $DF11_LIBRARY when that is set, else the copy next to
this file that `pip install ./python` bundles. $DF11_LIBRARY overrides: a
library it names that fails to load is an error, never a silent fall back to
the bundled copy. ctypes needs no build against a particular Python or
torch, so one wheel serves them all.
"""
import ctypes
import operator
import os
import threading

import numpy as np

from ._errors import UsageError, one_line, raise_for_status

C_API_VERSION = 1  # DF11_C_API_VERSION this binding was written for

ENC_RAW, ENC_ZSTD, ENC_BF16_HUFFMAN = 0, 1, 2
ENCODING_NAMES = {ENC_RAW: "raw", ENC_ZSTD: "zstd", ENC_BF16_HUFFMAN: "bf16-huffman"}

df11_status = ctypes.c_int32
c_u64 = ctypes.c_uint64
c_u64_p = ctypes.POINTER(ctypes.c_uint64)
c_void_pp = ctypes.POINTER(ctypes.c_void_p)


class TensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_char_p),
        ("shard", ctypes.c_char_p),
        ("ndim", ctypes.c_uint32),
        ("shape", c_u64_p),
        ("encoding", ctypes.c_uint32),
        ("original_bytes", c_u64),
        ("stored_bytes", c_u64),
    ]


class _Opaque(ctypes.Structure):
    pass


File_p = ctypes.POINTER(_Opaque)
Gpu_p = ctypes.POINTER(_Opaque)
Plan_p = ctypes.POINTER(_Opaque)

# (name, restype, argtypes). Functions returning df11_status are checked by
# `call`, which turns a non-zero status into a Df11Error.
_PROTOTYPES = [
    ("df11_version", ctypes.c_char_p, []),
    ("df11_c_api_version", ctypes.c_int, []),
    ("df11_status_name", ctypes.c_char_p, [df11_status]),
    ("df11_status_exit_code", ctypes.c_int, [df11_status]),
    ("df11_last_error", ctypes.c_char_p, []),
    ("df11_open", df11_status, [ctypes.c_char_p, ctypes.POINTER(File_p)]),
    ("df11_close", None, [File_p]),
    ("df11_tensor_count", c_u64, [File_p]),
    ("df11_tensor_info_at", df11_status, [File_p, c_u64, ctypes.POINTER(TensorInfo)]),
    ("df11_find_tensor", df11_status, [File_p, ctypes.c_char_p, c_u64_p]),
    ("df11_decode_host", df11_status, [File_p, c_u64, ctypes.c_void_p, c_u64, ctypes.c_uint]),
    ("df11_image_size", df11_status, [File_p, c_u64_p, c_u64, c_u64_p]),
    ("df11_pack_host", df11_status, [File_p, c_u64_p, c_u64, ctypes.c_void_p, c_u64]),
    ("df11_gpu_device_count", ctypes.c_int, []),
    ("df11_gpu_create", df11_status, [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(Gpu_p)]),
    ("df11_gpu_destroy", None, [Gpu_p]),
    ("df11_plan_create", df11_status,
     [Gpu_p, File_p, c_u64_p, c_u64, ctypes.c_void_p, c_void_pp, ctypes.c_void_p, ctypes.POINTER(Plan_p)]),
    ("df11_plan_launch", df11_status, [Plan_p, ctypes.c_void_p]),
    ("df11_plan_status", df11_status, [Plan_p, ctypes.c_void_p, c_u64_p]),
    ("df11_plan_destroy", None, [Plan_p]),
]

_lock = threading.Lock()
_lib = None


def library_path():
    """Where the shared library is loaded from: $DF11_LIBRARY, else the bundled copy."""
    env = os.environ.get("DF11_LIBRARY")
    if env:
        # Absolute: dlopen never searches the working directory, and a bare
        # name would find whatever libdf11.so the system's search path holds.
        return os.path.abspath(env)
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libdf11.so")


def _load(path):
    """The library at `path` with every prototype declared. Every way it can
    fail (missing, not a shared library, a symbol missing, another C API
    version) raises ImportError naming the path and the cause."""
    origin = "$DF11_LIBRARY" if os.environ.get("DF11_LIBRARY") else "the copy bundled with the package"
    shown = one_line(os.fsencode(path))
    if not os.path.isfile(path):
        raise ImportError(
            f"df11: {shown} ({origin}): shared library not found (install the package with "
            f"`pip install ./python`, or set DF11_LIBRARY=/path/to/libdf11.so)", path=path)
    try:
        handle = ctypes.CDLL(path)
        for name, restype, argtypes in _PROTOTYPES:
            fn = getattr(handle, name)  # AttributeError: undefined symbol
            fn.restype = restype
            fn.argtypes = argtypes
    except (OSError, AttributeError) as e:
        raise ImportError(f"df11: {shown} ({origin}): not a usable libdf11: {one_line(str(e))}", path=path) from e
    got = handle.df11_c_api_version()
    if got != C_API_VERSION:
        raise ImportError(f"df11: {shown} ({origin}): C API version {got}, this binding needs {C_API_VERSION}",
                          path=path)
    return handle


def lib():
    """The loaded library, with every prototype declared (loaded once)."""
    global _lib
    # Every call of the binding comes through here: once loaded, no lock (the
    # global is set only after every prototype is declared).
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            _lib = _load(library_path())
        return _lib


def call(fn_name, *args):
    """Calls a df11_status function; raises the matching Df11Error on failure."""
    status = getattr(lib(), fn_name)(*args)
    if status != 0:
        raise_status(status)


def raise_status(status, suffix=""):
    """Raises the Df11Error of a non-zero status with this thread's last message."""
    L = lib()
    name = L.df11_status_name(status).decode()
    message = L.df11_last_error().decode("utf-8", "replace") or name
    raise_for_status(status, name, L.df11_status_exit_code(status), message + suffix)


# ---- arguments -----------------------------------------------------------------
UINT64_MAX = 2**64 - 1
UINT_MAX = 2**(8 * ctypes.sizeof(ctypes.c_uint)) - 1
INT_MAX = 2**(8 * ctypes.sizeof(ctypes.c_int) - 1) - 1


def checked_int(value, what, where, high=UINT64_MAX):
    """value as an int in [0, high], else UsageError. Integers bound for C
    are checked here (tensor indices through File._checked_index): ctypes converts
    modulo 2**bits without a word (-1 becomes UINT64_MAX and passes the
    library's size checks; 2**40 threads become 0)."""
    # bool is an int to operator.index; True as a tensor index or a thread
    # count is a mistake, not tensor 1.
    if isinstance(value, (bool, np.bool_)):
        raise UsageError(f"{where}: {what} must be an integer, not {type(value).__name__}", "Usage")
    try:
        v = operator.index(value)  # ints and numpy integers, not floats
    except TypeError:
        raise UsageError(f"{where}: {what} must be an integer, not {type(value).__name__}", "Usage") from None
    if not 0 <= v <= high:
        raise UsageError(f"{where}: {what} {v} is out of range (0 to {high})", "Usage")
    return v


def u64_array(values):
    values = list(values)
    return (c_u64 * len(values))(*values)


class OwnsHandle:
    """Base of the classes that own a libdf11 handle. A copy (copy.copy,
    copy.deepcopy, pickle) would share the handle and free it twice, a
    crash: they refuse with TypeError, as open file objects do."""

    _copy_hint = ""

    def __reduce_ex__(self, protocol):
        raise TypeError(f"cannot pickle or copy '{type(self).__module__}.{type(self).__qualname__}' object: "
                        f"it owns a libdf11 handle that a copy would free twice{self._copy_hint}")
