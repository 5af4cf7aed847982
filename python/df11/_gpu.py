"""GPU contexts and decode plans over torch memory and torch streams.

Images (the packed compressed sections) and outputs live in tensors that the
caller allocated with torch, so torch's caching allocator owns all the big
memory; df11 only allocates each plan's small workspace. A Plan holds
references to its image and output tensors: they cannot be freed while a
launch may still read or write them.
"""
import ctypes
import threading

from . import _lib
from ._errors import UsageError, one_line

_contexts = {}
_contexts_lock = threading.Lock()


_raw_stream = None  # torch._C._cuda_getCurrentRawStream, looked up once


def current_stream_ptr(device_index=None):
    """cudaStream_t of torch's current stream on `device_index` (None: the
    current device), as an int, without building a torch Stream: forward
    hooks call this per block."""
    global _raw_stream
    if _raw_stream is None:
        import torch
        _raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", False) or (
            lambda index: torch.cuda.current_stream(index).cuda_stream)
    if device_index is None:
        import torch
        device_index = torch.cuda.current_device()
    return _raw_stream(device_index)


def stream_handle(stream, device_index=None):
    """cudaStream_t of a torch stream as void*; None: torch's current stream
    on `device_index` (the plan's device, not whichever device is current)."""
    if stream is None:
        return ctypes.c_void_p(current_stream_ptr(device_index))
    return ctypes.c_void_p(stream.cuda_stream)


class GpuContext(_lib.OwnsHandle):
    """A df11_gpu bound to one device. One per device per process, kept for
    the process's life (see context()); plans are destroyed before it."""

    def __init__(self, device_index):
        import torch
        device_index = _lib.checked_int(device_index, "CUDA device", "df11", _lib.INT_MAX)
        self.device_index = device_index
        self._handle = _lib.Gpu_p()
        # df11_gpu_create calls cudaSetDevice on this thread: do it under
        # torch's device guard so torch's notion of the current device holds.
        with torch.cuda.device(device_index):
            _lib.call("df11_gpu_create", device_index, None, ctypes.byref(self._handle))

    @property
    def handle(self):
        return self._handle


def context(device_index):
    with _contexts_lock:
        ctx = _contexts.get(device_index)
        if ctx is None:
            ctx = GpuContext(device_index)
            _contexts[device_index] = ctx
        return ctx


def _aligned(tensor, alignment, what):
    if tensor.data_ptr() % alignment:
        raise UsageError(f"{what} at 0x{tensor.data_ptr():x} is not {alignment}-byte aligned", "Usage")


class Plan(_lib.OwnsHandle):
    """Decode of the image of tensors `indices` of `file` (laid out in
    `image`, a CUDA uint8 tensor) into `outputs` (CUDA tensors of each
    tensor's original size) in one kernel launch.

    Creating a plan synchronizes `stream`; launch() does not. A plan cannot
    be copied or pickled."""

    def __init__(self, file, indices, image, outputs, stream=None):
        import torch
        if len(indices) != len(outputs):
            raise UsageError(f"{file._shown}: a plan needs one output per tensor "
                             f"({len(indices)} tensors, {len(outputs)} outputs)", "Usage")
        file._check_open()
        self.file = file  # keeps the mapping (and the df11_file) alive
        self.indices = [file._checked_index(i) for i in indices]
        self.image = image
        self.outputs = list(outputs)
        self.device_index = image.device.index
        _aligned(image, 256, f"{file._shown}: image")
        for i, out in zip(self.indices, self.outputs):
            need = file._infos[i]["original_bytes"]
            got = out.numel() * out.element_size()
            if got != need or not out.is_contiguous() or out.device != image.device:
                raise UsageError(
                    f"{file._shown}: output for '{one_line(file._infos[i]['name'])}' must be a contiguous "
                    f"{need}-byte tensor on {image.device} (got {got} bytes on {out.device})", "Usage")
        self.ctx = context(self.device_index)
        idx = _lib.u64_array(self.indices)
        outs = (ctypes.c_void_p * len(self.outputs))(*[o.data_ptr() for o in self.outputs])
        self._handle = _lib.Plan_p()
        with torch.cuda.device(self.device_index), file._use() as file_handle:
            _lib.call("df11_plan_create", self.ctx.handle, file_handle, idx, len(self.indices),
                      ctypes.c_void_p(image.data_ptr()), outs, stream_handle(stream, self.device_index),
                      ctypes.byref(self._handle))

    def launch(self, stream=None):
        """Enqueues the decode on `stream` (torch's current stream when None)."""
        _lib.call("df11_plan_launch", self._handle, stream_handle(stream, self.device_index))

    def launch_raw(self, stream_ptr):
        """launch() for the hot path: stream_ptr is the raw cudaStream_t (an
        int, or a c_void_p), with no lookup of torch's current stream."""
        status = _lib.lib().df11_plan_launch(self._handle, stream_ptr)
        if status != 0:
            _lib.raise_status(status)

    def check(self, stream=None):
        """Synchronizes `stream` and raises the first decode error since the
        last check (the library's message names the file and the tensor)."""
        failed = ctypes.c_uint64(0)
        status = _lib.lib().df11_plan_status(self._handle, stream_handle(stream, self.device_index),
                                             ctypes.byref(failed))
        if status != 0:
            _lib.raise_status(status)

    def close(self):
        if getattr(self, "_handle", None):
            _lib.lib().df11_plan_destroy(self._handle)
            self._handle = None
            self.image = None
            self.outputs = []

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
