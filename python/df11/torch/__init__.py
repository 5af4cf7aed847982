"""PyTorch inference from df11 checkpoints: df11.torch.load_model(path).

Requires torch and transformers (accelerate is used when installed). The
name grouping (_layout) is pure Python and imports without torch."""
from ._layout import block_of, plan_units


def __getattr__(name):
    # torch is imported on first use of load_model, not on `import df11.torch`.
    if name in ("load_model", "Df11Model"):
        from . import _loader
        return getattr(_loader, name)
    raise AttributeError(name)


__all__ = ["load_model", "Df11Model", "block_of", "plan_units"]
