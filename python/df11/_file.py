"""df11.open(): a .df11 file or a df11 model directory, read tensor by tensor."""
import ctypes
import os

import numpy as np

from . import _lib
from ._dtypes import numpy_dtype, torch_dtype
from ._errors import UsageError


class File:
    """An open .df11 file or df11 directory (memory-mapped, validated on open).

    Use as a context manager or call close(). Not thread-safe as an object,
    except that several threads may call read() on the CPU at once."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._handle = _lib.File_p()
        _lib.call("df11_open", self.path.encode(), ctypes.byref(self._handle))
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
    def names(self):
        """Tensor names in the model's order (shard order, then data order)."""
        return [e["name"] for e in self._infos]

    def info(self, name):
        """dict: name, dtype (safetensors string), shape, encoding
        ("bf16-huffman", "zstd", "raw"), original_bytes, stored_bytes, shard, index."""
        return dict(self._infos[self.index(name)])

    def index(self, name):
        self._check_open()
        i = self._index.get(name)
        if i is None:  # the library's lookup raises its own error (Usage) with its message
            out = ctypes.c_uint64(0)
            _lib.call("df11_find_tensor", self._handle, str(name).encode(), ctypes.byref(out))
            i = out.value
        return i

    def __contains__(self, name):
        return name in self._index

    def __len__(self):
        return len(self._infos)

    # ---- decoding ------------------------------------------------------------
    def read(self, name, device=None, threads=0):
        """Decodes tensor `name`.

        device None or "cpu": a numpy array of the original shape, decoded on
        the CPU with `threads` threads (0: all cores); BF16 comes as
        ml_dtypes.bfloat16 when ml_dtypes is installed, else as np.uint16 bit
        patterns. device "cuda"/"cuda:N"/torch.device: a torch tensor decoded
        on that GPU (BF16-Huffman tensors; the others are decoded on the CPU
        and copied), on torch's current stream, synchronized before return."""
        i = self.index(name)
        if device is not None and str(device) != "cpu":
            return self._read_cuda(i, device, threads)
        return self.read_numpy(i, threads)

    def read_numpy(self, i, threads=0):
        e = self._infos[i]
        dt = numpy_dtype(e["dtype"])
        buf = np.empty(e["original_bytes"], dtype=np.uint8)
        self.decode_into(i, buf.ctypes.data, buf.nbytes, threads)
        if dt is None:  # a dtype without a numpy type: the raw bytes
            return buf
        return buf.view(dt).reshape(e["shape"])

    def decode_into(self, i, address, nbytes, threads=0):
        """Decodes tensor i on the CPU into host memory at `address` (nbytes
        >= its original_bytes) and checks its checksum."""
        self._check_open()
        _lib.call("df11_decode_host", self._handle, i, ctypes.c_void_p(address), nbytes, threads)

    def image_size(self, indices):
        """Bytes of the GPU image of BF16-Huffman tensors `indices`."""
        self._check_open()
        out = ctypes.c_uint64(0)
        _lib.call("df11_image_size", self._handle, _lib.u64_array(indices), len(indices), ctypes.byref(out))
        return out.value

    def pack_into(self, indices, address, nbytes):
        """Writes the image of tensors `indices` into host memory at `address`."""
        self._check_open()
        _lib.call("df11_pack_host", self._handle, _lib.u64_array(indices), len(indices),
                  ctypes.c_void_p(address), nbytes)

    def _read_cuda(self, i, device, threads):
        import torch
        from ._gpu import Plan

        dev = torch.device(device)
        if dev.type != "cuda":
            raise UsageError(f"df11: {self.path}: device '{device}' is neither cpu nor cuda", "Usage")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
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
        if not self._handle:
            raise UsageError(f"df11: {self.path}: file is closed", "Usage")

    def close(self):
        if getattr(self, "_handle", None):
            _lib.lib().df11_close(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        state = "open" if self._handle else "closed"
        return f"<df11.File {self.path!r} {len(self._infos)} tensors, {state}>"


def open(path):  # noqa: A001 (df11.open mirrors the builtin on purpose)
    """Opens a .df11 file or a df11 model directory."""
    return File(path)
