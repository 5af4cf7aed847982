"""df11.torch.load_model: a transformers model whose big weights stay compressed."""
import contextlib
import functools
import os

import numpy as np
import torch

from .. import _file
from .._dtypes import torch_dtype
from .._errors import UsageError
from . import _runtime
from ._layout import DEFAULT_STANDALONE_MIN_BYTES, block_of, plan_units


@contextlib.contextmanager
def _empty_weights():
    """Parameters on the meta device, buffers real (rotary tables, masks).
    accelerate.init_empty_weights when installed, else the same trick here."""
    try:
        from accelerate import init_empty_weights
    except ImportError:
        init_empty_weights = None
    if init_empty_weights is not None:
        with init_empty_weights():
            yield
        return
    original = torch.nn.Module.register_parameter

    def register_parameter(module, name, param):
        original(module, name, param)
        if param is not None:
            kwargs = dict(module._parameters[name].__dict__)
            kwargs["requires_grad"] = param.requires_grad
            module._parameters[name] = type(param)(module._parameters[name].to("meta"), **kwargs)

    torch.nn.Module.register_parameter = register_parameter
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def _build_empty_model(config, dtype):
    from transformers import AutoModelForCausalLM
    with _empty_weights():
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        except TypeError:  # transformers 4: torch_dtype
            model = AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    # Tied weights (GPT-2's lm_head and wte) become one Parameter here, as
    # from_pretrained makes them; checkpoints store such a tensor once. Outside
    # the context: inside, re-registering makes a fresh meta copy, not a tie.
    model.tie_weights()
    return model


def _file_name_for(model, model_name, names):
    """The checkpoint's name of a model parameter: the same name, or with the
    base-model prefix added or removed (old GPT-2 files lack `transformer.`)."""
    if model_name in names:
        return model_name
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix:
        if model_name.startswith(prefix + ".") and model_name[len(prefix) + 1:] in names:
            return model_name[len(prefix) + 1:]
        if prefix + "." + model_name in names:
            return prefix + "." + model_name
    return None


class Df11Model:
    """What load_model attaches to the model as `model.df11`: the open file,
    the launcher and its units; check() and memory figures."""

    def __init__(self, file, launcher, units, resident_bytes, hooks):
        self.file = file
        self.launcher = launcher
        self.units = units
        self.resident_bytes = resident_bytes
        self.hooks = hooks

    @property
    def scratch_bytes(self):
        return self.launcher.scratch.numel()

    @property
    def image_bytes(self):
        return getattr(self.launcher, "image_bytes", 0)

    def check(self):
        """Synchronizes and raises the first decode error since the last check."""
        self.launcher.check()

    def close(self):
        for h in self.hooks:
            h.remove()
        self.launcher.close()
        self.file.close()


def load_model(path, device="cuda", offload=False, dtype=torch.bfloat16, config=None,
               standalone_min_bytes=DEFAULT_STANDALONE_MIN_BYTES, threads=0):
    """Builds the transformers model of a df11 model directory (its config.json)
    without materialising BF16 weights.

    Every 2-D BF16 weight of each transformer block stays compressed (one
    image per block); a forward pre-hook decodes a block's matrices in one
    launch, on torch's current stream, into one scratch buffer shared by all
    blocks and sized for the largest. The embeddings and lm_head (2-D BF16
    tensors outside blocks of at least `standalone_min_bytes`) stay
    compressed too and are decoded on use. Everything else is loaded once.

    device: "cuda", "cuda:N", or "cpu" (decodes on the CPU; slow, for
    machines without a GPU). offload=True keeps the compressed images in
    pinned host memory and streams each to the GPU ahead of its use.
    The model gets `model.df11` (see Df11Model) and `model.df11_check()`;
    `model.generate()` checks the decode status when it returns.
    """
    path = os.fspath(path)
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type not in ("cuda", "cpu"):
        raise UsageError(f"df11: {path}: device '{device}' is neither cuda nor cpu", "Usage")
    if offload and dev.type != "cuda":
        raise UsageError(f"df11: {path}: offload=True needs a CUDA device", "Usage")
    if config is None:
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise UsageError(f"df11: {path}: no config.json (load_model takes a df11 model directory, "
                             f"or pass config=)", "Usage")
        from transformers import AutoConfig
        config = AutoConfig.from_pretrained(path)

    f = _file.open(path)
    try:
        model = _build_empty_model(config, dtype)
        return _bind(model, f, path, dev, offload, standalone_min_bytes, threads)
    except BaseException:
        f.close()
        raise


def _bind(model, f, path, dev, offload, standalone_min_bytes, threads):
    file_names = set(f.names())
    # Every holder of every parameter: tied weights (GPT-2's wte and lm_head)
    # are one Parameter held by two modules; both must be rebound.
    holders = {}
    for full, p in model.named_parameters(remove_duplicate=False):
        mod_name, _, attr = full.rpartition(".")
        holders.setdefault(id(p), (p, []))[1].append((mod_name, attr, full))
    param_file = {}   # id(param) -> file tensor name
    for pid, (p, hs) in holders.items():
        for _, _, full in hs:
            fname = _file_name_for(model, full, file_names)
            if fname is not None:
                param_file[pid] = fname
                break
        else:
            raise UsageError(f"df11: {path}: the model's parameter '{hs[0][2]}' is not in the checkpoint "
                             f"(ModelTensorMissing)", "ModelTensorMissing")

    # Only parameters whose model dtype is the file's BF16 can be views of
    # the BF16 scratch; others (kept in float32 by the model) are resident.
    wanted = set()
    for pid, (p, _) in holders.items():
        name = param_file[pid]
        info = f.info(name)
        if tuple(p.shape) != tuple(info["shape"]):
            raise UsageError(f"df11: {path}: tensor '{name}' has shape {list(info['shape'])}, the model "
                             f"expects {list(p.shape)} (ModelShapeMismatch)", "ModelShapeMismatch")
        if p.dtype == torch.bfloat16:
            wanted.add(name)
    infos = [f.info(n) for n in f.names()]
    units, _ = plan_units(infos, standalone_min_bytes, wanted)
    in_unit = {n: u for u in units for n in u.names}

    scratch_bytes = max((u.scratch_bytes for u in units), default=0)
    scratch = torch.empty(max(scratch_bytes, 1), dtype=torch.uint8, device=dev)
    if dev.type == "cpu":
        launcher = _runtime.Cpu(f, units, scratch, threads)
    elif offload:
        launcher = _runtime.GpuOffload(f, units, scratch)
    else:
        launcher = _runtime.GpuResident(f, units, scratch)

    def set_param(pid, tensor):
        p, hs = holders[pid]
        new = torch.nn.Parameter(tensor, requires_grad=False)
        for mod_name, attr, _ in hs:
            model.get_submodule(mod_name)._parameters[attr] = new

    hook_modules = {}  # module name -> unit (each module gets one hook per unit)
    resident_bytes = 0
    for pid, (p, hs) in holders.items():
        name = param_file[pid]
        info = f.info(name)
        unit = in_unit.get(name)
        if unit is not None:
            k = unit.names.index(name)
            view = scratch[unit.offsets[k]:unit.offsets[k] + unit.nbytes[k]].view(torch.bfloat16)
            set_param(pid, view.view(info["shape"]))
            file_block = block_of(name)
            is_block_unit = file_block is not None and unit.key == file_block[0]
            for mod_name, _, full in hs:
                # A block's unit is decoded before the block's forward; a
                # standalone one before the forward of each module holding it.
                model_block = block_of(full)
                owner = model_block[0] if is_block_unit and model_block is not None else mod_name
                hook_modules.setdefault(owner, set()).add(unit.key)
        else:
            host = f.read_numpy(info["index"], threads)
            tdt = torch_dtype(info["dtype"])
            t = torch.from_numpy(np.ascontiguousarray(host).view(np.uint8)).view(tdt).reshape(info["shape"])
            t = t.to(device=dev, dtype=p.dtype)
            set_param(pid, t)
            resident_bytes += t.numel() * t.element_size()

    # Buffers (rotary tables, masks) were built on the CPU: move them.
    for mod in model.modules():
        for bname, buf in list(mod._buffers.items()):
            if buf is not None and buf.device != dev:
                mod._buffers[bname] = buf.to(dev)

    by_key = {u.key: u for u in units}
    hooks = []
    for mod_name, keys in hook_modules.items():
        module = model.get_submodule(mod_name)
        for key in sorted(keys, key=lambda k: by_key[k].order):
            unit = by_key[key]

            def pre_hook(_module, _args, unit=unit):
                launcher.launch(unit)

            hooks.append(module.register_forward_pre_hook(pre_hook))

    state = Df11Model(f, launcher, units, resident_bytes, hooks)
    model.df11 = state
    model.df11_check = state.check
    original_generate = model.generate

    @functools.wraps(original_generate)
    def generate(*args, **kwargs):
        out = original_generate(*args, **kwargs)
        state.check()
        return out

    model.generate = generate
    model.eval()
    return model
