"""df11.open(): a .df11 file or a df11 model directory, read tensor by tensor."""
import contextlib
import ctypes
import os
import re
import threading

import numpy as np

from . import _lib
from ._dtypes import numpy_dtype, torch_dtype
from ._errors import InputError, UsageError, one_line

# N is a plain decimal index, as the CLI takes it (cuda:01 is refused there too).
_DEVICE = re.compile(r"(cpu|cuda)(?::(0|[1-9][0-9]*))?")


class File(_lib.OwnsHandle):
    """An open .df11 file or df11 directory (memory-mapped, validated on open).

    Use as a context manager or call close(). Not thread-safe as an object,
    except that several threads may call read() on the CPU at once, and that
    close() waits for the calls into the library in progress (a prefetch
    thread still reading when a `with` block ends) and refuses those that
    start after it. Cannot be copied or pickled (open it again from its
    path)."""

    _copy_hint = " (df11.open(path) opens the file again, in this process or another)"

    def __init__(self, path):
        # str, bytes or os.PathLike, as builtins.open takes them; the file
        # system's encoding (surrogateescape) carries names that are not UTF-8.
        # Calls into the library hold the handle as users; close() waits for
        # them (ctypes releases the GIL while the library decodes).
        self._users = 0
        self._closing = False
        self._lock = threading.Condition()
        raw = os.fsencode(path)
        self.path = os.fsdecode(raw)
        self._shown = one_line(raw)  # the path in this layer's messages, as the library shows it
        if b"\0" in raw:  # c_char_p would end the path there and open another file
            raise ValueError(f"df11: {self.path!r}: embedded null byte in the path")
        self._handle = _lib.File_p()
        _lib.call("df11_open", raw, ctypes.byref(self._handle))
        L = _lib.lib()
        self._infos = []
        self._index = {}
        info = _lib.TensorInfo()
        for i in range(L.df11_tensor_count(self._handle)):
            _lib.call("df11_tensor_info_at", self._handle, i, ctypes.byref(info))
            # Copied out: the library's strings live only as long as the file.
            entry = {
                "name": info.name.decode(),
                "dtype": info.dtype.decode(),
                "shape": tuple(info.shape[d] for d in range(info.ndim)),
                "encoding": _lib.ENCODING_NAMES.get(info.encoding, str(info.encoding)),
                "original_bytes": info.original_bytes,
                "stored_bytes": info.stored_bytes,
                "shard": info.shard.decode() if info.shard else "",
                "index": i,
            }
            self._infos.append(entry)
            self._index[entry["name"]] = i

    # ---- listing -----------------------------------------------------------
    # After close() every question is an error, as for safetensors' safe_open
    # and Python's files: a closed File answering names() but not read() would
    # hide the bug until the first read.
    def names(self):
        """Tensor names in the model's order (shard order, then data order)."""
        self._check_open()
        return [e["name"] for e in self._infos]

    def info(self, name):
        """dict: name, dtype (safetensors string), shape, encoding
        ("bf16-huffman", "zstd", "raw"), original_bytes, stored_bytes, shard, index."""
        return dict(self._infos[self.index(name)])

    def index(self, name):
        """Position of tensor `name` in names(); UsageError if there is none."""
        self._check_open()
        i = self._index.get(name) if isinstance(name, str) else None
        if i is None:
            # Said here rather than by df11_find_tensor: c_char_p would end a
            # name at a NUL and find 'a' for 'a\0b', which `in` says is absent.
            # The message is the library's.
            raise UsageError(f"{self._shown}: no tensor named {name!r}", "Usage")
        return i

    def __contains__(self, name):
        self._check_open()
        return isinstance(name, str) and name in self._index

    def __len__(self):
        self._check_open()
        return len(self._infos)

    def __bool__(self):  # not len(): `if f:` on a closed or empty File is no error
        return True

    # ---- decoding ------------------------------------------------------------
    def read(self, name, device=None, threads=0):
        """Decodes tensor `name`.

        device None, "cpu" or "cpu:N": a numpy array of the original shape,
        decoded on the CPU with `threads` threads (0: all cores); BF16 comes
        as ml_dtypes.bfloat16 when ml_dtypes is installed, else as np.uint16
        bit patterns. device "cuda"/"cuda:N"/torch.device: a torch tensor
        decoded on that GPU (BF16-Huffman tensors; the others are decoded on
        the CPU and copied), on torch's current stream, synchronized before
        return; it needs torch (UsageError without it). A dtype without a
        numpy (or, on a GPU, torch) type comes as its raw bytes, a flat uint8
        array (tensor). Any other device is a UsageError."""
        i = self.index(name)
        kind, ordinal = self._parse_device(device)
        if kind == "cuda":
            return self._read_cuda(i, ordinal, threads)
        return self.read_numpy(i, threads)

    def _parse_device(self, device):
        """("cpu", None) or ("cuda", ordinal or None) for None, "cpu",
        "cpu:N", "cuda", "cuda:N", a torch.device of those types, or an int
        (a CUDA ordinal, as torch takes it); UsageError for anything else.
        Parsed from the string, so that a CPU read needs no torch."""
        if device is None:
            return "cpu", None
        if hasattr(device, "__index__") and not isinstance(device, (bool, np.bool_)):  # int, numpy integer
            return "cuda", _lib.checked_int(device, "CUDA device", self._where, _lib.INT_MAX)
        m = _DEVICE.fullmatch(str(device))  # str(torch.device("cpu", 0)) is "cpu:0"
        if m is None:
            raise UsageError(f"{self._shown}: device {device!r} is neither cpu nor cuda (cuda:N)", "Usage")
        if m.group(1) == "cpu":
            return "cpu", None
        ordinal = m.group(2)
        return "cuda", None if ordinal is None else _lib.checked_int(
            int(ordinal), "CUDA device", self._where, _lib.INT_MAX)

    @property
    def _where(self):
        return f"{self._shown}"

    def _checked_index(self, i):
        """Tensor index i as an int in range, else UsageError: a negative
        index would wrap to 2**64 - 1 in ctypes, and Python's negative
        indexing is not the C API's."""
        if not self._infos:
            raise UsageError(f"{self._where}: tensor index {i!r}: the file has no tensors", "Usage")
        return _lib.checked_int(i, "tensor index", self._where, len(self._infos) - 1)

    def _checked_threads(self, threads):
        return _lib.checked_int(threads, "threads", self._where, _lib.UINT_MAX)

    def read_numpy(self, i, threads=0):
        """Decodes tensor i (its position in names()) on the CPU: read(name)."""
        self._check_open()
        i = self._checked_index(i)
        e = self._infos[i]
        dt = numpy_dtype(e["dtype"])
        buf = np.empty(e["original_bytes"], dtype=np.uint8)
        self.decode_into(i, buf.ctypes.data, buf.nbytes, threads)
        if dt is None:  # a dtype without a numpy type: the raw bytes
            return buf
        try:
            return buf.view(dt).reshape(e["shape"])
        except ValueError as err:  # a 0-byte tensor whose shape numpy cannot hold ([0, 2**64 - 1])
            raise UsageError(f"{self._where}: tensor {e['name']!r} of shape {list(e['shape'])} has no numpy "
                             f"form ({err}); decode_into() gives its bytes", "Usage") from None

    def decode_into(self, i, address, nbytes, threads=0):
        """Decodes tensor i on the CPU into host memory at `address` (nbytes
        >= its original_bytes) and checks its checksum."""
        args = (self._checked_index(i), ctypes.c_void_p(_lib.checked_int(address, "address", self._where)),
                _lib.checked_int(nbytes, "nbytes", self._where), self._checked_threads(threads))
        with self._use() as handle:
            _lib.call("df11_decode_host", handle, *args)

    def image_size(self, indices):
        """Bytes of the GPU image of BF16-Huffman tensors `indices`."""
        indices = [self._checked_index(i) for i in indices]
        out = ctypes.c_uint64(0)
        with self._use() as handle:
            _lib.call("df11_image_size", handle, _lib.u64_array(indices), len(indices), ctypes.byref(out))
        return out.value

    def pack_into(self, indices, address, nbytes):
        """Writes the image of tensors `indices` into host memory at `address`."""
        indices = [self._checked_index(i) for i in indices]
        args = (_lib.u64_array(indices), len(indices), ctypes.c_void_p(_lib.checked_int(address, "address", self._where)),
                _lib.checked_int(nbytes, "nbytes", self._where))
        with self._use() as handle:
            _lib.call("df11_pack_host", handle, *args)

    def _read_cuda(self, i, ordinal, threads):
        try:
            import torch
        except ImportError:
            raise UsageError(f"{self._shown}: reading to a CUDA device needs torch (pip install torch)",
                             "Usage") from None
        from ._gpu import Plan

        threads = self._checked_threads(threads)
        count = torch.cuda.device_count()
        if count == 0:  # torch's own error would be an AssertionError or RuntimeError
            raise InputError(f"{self._shown}: no CUDA device (torch sees none)", "CudaUnavailable")
        if ordinal is None:
            ordinal = torch.cuda.current_device()
        if ordinal >= count:
            raise UsageError(f"{self._shown}: CUDA device {ordinal} out of range ({count} devices)", "Usage")
        dev = torch.device("cuda", ordinal)
        e = self._infos[i]
        tdt = torch_dtype(e["dtype"])
        with torch.cuda.device(dev):
            if e["original_bytes"] == 0:
                # A 0-byte uint8 tensor may carry stride 0, which view() refuses.
                return torch.empty(e["shape"], dtype=tdt if tdt is not None else torch.uint8, device=dev)
            if e["encoding"] != "bf16-huffman" or tdt is None:
                host = self.read_numpy(i, threads)
                t = torch.from_numpy(host.reshape(-1).view(np.uint8).copy()).to(dev)
                return t.view(tdt).reshape(e["shape"]) if tdt is not None else t
            size = self.image_size([i])
            host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
            self.pack_into([i], host.data_ptr(), size)
            image = torch.empty(size, dtype=torch.uint8, device=dev)
            image.copy_(host, non_blocking=True)
            out = torch.empty(e["shape"], dtype=tdt, device=dev)
            plan = Plan(self, [i], image, [out])
            try:
                plan.launch()
                plan.check()  # synchronizes: `host` may be freed after this
            finally:
                plan.close()
            return out

    # ---- lifetime --------------------------------------------------------------
    def _check_open(self):
        if not self._handle or self._closing:
            raise UsageError(f"{self._shown}: file is closed", "Usage")

    @contextlib.contextmanager
    def _use(self):
        """The handle, for one call into the library; close() waits until
        every such call has returned. UsageError once the file is closed or
        closing."""
        with self._lock:
            self._check_open()
            self._users += 1
        try:
            yield self._handle
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._lock.notify_all()

    def close(self):
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the lock existed: nothing is open
            return
        with lock:
            self._closing = True
            while self._users:
                lock.wait()
            if getattr(self, "_handle", None):
                _lib.lib().df11_close(self._handle)
                self._handle = None

    def __enter__(self):
        self._check_open()  # as builtins.open: `with` on a closed file is an error
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        state = "open" if self._handle and not self._closing else "closed"
        return f"<df11.File {self.path!r} {len(self._infos)} tensors, {state}>"


def open(path):  # noqa: A001 (df11.open mirrors the builtin on purpose)
    """Opens a .df11 file or a df11 model directory."""
    return File(path)
