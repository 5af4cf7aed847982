"""df11: lossless BF16 checkpoints (~67% size), decoded on the CPU or the GPU.

    import df11
    with df11.open("model.df11") as f:          # a .df11 file or a df11 directory
        for name in f.names():
            print(name, f.info(name))
        w = f.read("model.layers.0.mlp.up_proj.weight")            # numpy, CPU
        t = f.read("model.layers.0.mlp.up_proj.weight", device="cuda")  # torch, GPU

    import df11.torch
    model = df11.torch.load_model("model.df11")  # weights stay compressed on the GPU

The library is libdf11.so, called through ctypes (bundled, or $DF11_LIBRARY).
"""
from ._errors import CorruptDataError, Df11Error, InputError, InternalError, OutOfMemoryError, UsageError
from ._file import File, open
from ._version import __version__


def library_version():
    """Version string of the loaded libdf11.so."""
    from . import _lib
    return _lib.lib().df11_version().decode()


def cuda_device_count():
    """CUDA devices the loaded library can use (0 in a CPU-only build)."""
    from . import _lib
    return _lib.lib().df11_gpu_device_count()


__all__ = ["open", "File", "Df11Error", "CorruptDataError", "UsageError", "InputError",
           "OutOfMemoryError", "InternalError", "__version__", "library_version", "cuda_device_count"]
