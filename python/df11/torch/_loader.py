"""df11.torch.load_model: a transformers model whose big weights stay compressed."""
import contextlib
import inspect
import os
import threading
import weakref

import numpy as np
import torch

from .. import _file
from .._dtypes import torch_dtype
from .._errors import InputError, UsageError, one_line
from . import _runtime
from ._layout import DEFAULT_STANDALONE_MIN_BYTES, PlacementError, block_of, group_of, place_groups, plan_units


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
    the launcher of each device and its units, the placement of each group;
    check() and memory figures."""

    def __init__(self, file, launchers, units, resident_bytes, hooks, placement, lock=None, decoding_modules=(),
                 shown=""):
        self.file = file
        self.launchers = launchers      # {device: launcher}
        self.launcher = next(iter(launchers.values())) if launchers else None  # the first device's
        self.units = units
        self.resident_bytes = resident_bytes
        self.hooks = hooks
        self.placement = placement      # {group (block or module name): device}
        # One forward at a time: every block decodes into the one scratch
        # buffer, so two threads' forwards would overwrite each other's
        # weights (wrong logits, and checksum failures that blame the file).
        self.lock = lock or threading.RLock()
        self.closed = False
        self._decoding_modules = list(decoding_modules)  # the modules whose forward decodes
        self._shown = shown

    @property
    def scratch_bytes(self):
        return sum(l.scratch.numel() for l in self.launchers.values())

    @property
    def image_bytes(self):
        return sum(getattr(l, "image_bytes", 0) for l in self.launchers.values())

    def check(self):
        """Synchronizes and raises the first decode error since the last check."""
        for launcher in self.launchers.values():
            launcher.check()

    def close(self):
        with self.lock:
            self.closed = True
            for h in self.hooks:
                h.remove()
            # A block or layer called on its own after this would compute
            # from whatever the scratch held: refused, as the model is.
            message = f"{self._shown}: the model's df11 file is closed (model.df11.close())"

            def closed(_module, _args):
                raise UsageError(message, "Usage")

            for module in self._decoding_modules:
                module.register_forward_pre_hook(closed)
            for launcher in self.launchers.values():
                launcher.close()
            self.file.close()


def _parse_bytes(v):
    """10 * 2**30, "10GiB", "10GB", "512MiB" -> bytes."""
    if isinstance(v, (int, float)):
        return int(v)
    t = str(v).strip().upper().replace(" ", "")
    for suffix, mult in (("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("GB", 10**9), ("MB", 10**6),
                         ("KB", 10**3), ("B", 1)):
        if t.endswith(suffix):
            return int(float(t[:-len(suffix)]) * mult)
    return int(t)


def _as_device(d, path=""):
    if isinstance(d, int) and not isinstance(d, bool):
        return torch.device("cuda", d)
    try:
        d = torch.device(d)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"{one_line(path)}: device {d!r} is neither cpu nor cuda (cuda:N)", "Usage") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        # As File.read(device="cuda") says it, rather than torch's "no NVIDIA driver".
        raise InputError(f"{one_line(path)}: no CUDA device (torch sees none); device='cpu' decodes on "
                         f"the CPU", "CudaUnavailable")
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", torch.cuda.current_device())
    return d


def load_model(path, device="cuda", offload=False, dtype=torch.bfloat16, config=None,
               standalone_min_bytes=DEFAULT_STANDALONE_MIN_BYTES, threads=0, device_map=None, max_memory=None):
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
    device_map: None (everything on `device`), "auto" (whole blocks on the
    visible GPUs in order, each GPU filled up to max_memory[device]: bytes or
    "10GiB"), or {module prefix: device} ("" for the rest). Each device gets
    its own scratch; activations move to a block's device before it runs.
    The model gets `model.df11` (see Df11Model) and `model.df11_check()`;
    `model.generate()` checks the decode status when it returns.
    """
    path = os.fspath(path)
    shown = one_line(os.fsencode(path))
    if device_map == "auto":
        if not torch.cuda.is_available():
            raise UsageError(f"{shown}: device_map='auto' needs CUDA devices", "Usage")
        devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    elif device_map is not None:
        device_map = {k: _as_device(v, path) for k, v in dict(device_map).items()}
        devices = list(dict.fromkeys(device_map.values()))
    else:
        devices = [_as_device(device, path)]
    if any(d.type not in ("cuda", "cpu") for d in devices):
        raise UsageError(f"{shown}: device {[str(d) for d in devices]} is neither cuda nor cpu", "Usage")
    if offload and any(d.type != "cuda" for d in devices):
        raise UsageError(f"{shown}: offload=True needs a CUDA device", "Usage")
    limits = {_as_device(k, path): _parse_bytes(v) for k, v in (max_memory or {}).items()}

    # The library first: a path that is not there, or not df11, is named as such.
    f = _file.open(path)
    try:
        if config is None:
            if not os.path.isfile(os.path.join(path, "config.json")):
                raise UsageError(f"{shown}: no config.json (load_model takes a df11 model directory, "
                                 f"or pass config=)", "Usage")
            from transformers import AutoConfig
            config = AutoConfig.from_pretrained(path)
        model = _build_empty_model(config, dtype)
        return _bind(model, f, path, devices, device_map, limits, offload, standalone_min_bytes, threads)
    except BaseException:
        f.close()
        raise


def _move_to(obj, dev):
    """obj with every tensor on another device moved to dev (tuples, lists, dicts)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(dev, non_blocking=True) if obj.device != dev else obj
    if isinstance(obj, (list, tuple)):
        moved = [_move_to(o, dev) for o in obj]
        return type(obj)(moved) if not hasattr(obj, "_fields") else type(obj)(*moved)
    if isinstance(obj, dict):
        return {k: _move_to(v, dev) for k, v in obj.items()}
    return obj


def _bind(model, f, path, devices, device_map, limits, offload, standalone_min_bytes, threads):
    shown = one_line(os.fsencode(path))  # the path in messages, as the library shows it
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
            raise UsageError(f"{shown}: the model's parameter '{hs[0][2]}' is not in the checkpoint "
                             f"(ModelTensorMissing)", "ModelTensorMissing")

    # Only parameters whose model dtype is the file's BF16 can be views of
    # the BF16 scratch; others (kept in float32 by the model) are resident.
    wanted = set()
    for pid, (p, _) in holders.items():
        name = param_file[pid]
        info = f.info(name)
        if tuple(p.shape) != tuple(info["shape"]):
            raise UsageError(f"{shown}: tensor '{name}' has shape {list(info['shape'])}, the model "
                             f"expects {list(p.shape)} (ModelShapeMismatch)", "ModelShapeMismatch")
        if p.dtype == torch.bfloat16:
            wanted.add(name)
    infos = [f.info(n) for n in f.names()]
    units, _ = plan_units(infos, standalone_min_bytes, wanted)
    in_unit = {n: u for u in units for n in u.names}

    # Placement: every parameter's group (its block, else its module; a tied
    # parameter goes with its first holder), in the model's order.
    group_of_param = {pid: group_of(hs[0][2]) for pid, (_, hs) in holders.items()}
    group_bytes, group_need = {}, {}
    for pid, (p, _) in holders.items():
        g, info = group_of_param[pid], f.info(param_file[pid])
        unit = in_unit.get(info["name"])
        group_bytes[g] = group_bytes.get(g, 0) + (info["stored_bytes"] if unit else info["original_bytes"])
        group_need[g] = max(group_need.get(g, 0), unit.scratch_bytes if unit else 0)
    if device_map is None:
        placed = {g: devices[0] for g in group_bytes}
    else:
        try:
            placed = place_groups([(g, group_bytes[g], group_need[g]) for g in group_bytes], devices, limits,
                                  device_map)
        except PlacementError as e:
            raise UsageError(f"{shown}: {e} (ModelDoesNotFit)", "ModelDoesNotFit") from None
    unit_device = {}
    for pid, (p, _) in holders.items():
        unit = in_unit.get(param_file[pid])
        if unit is not None:
            unit_device[unit.key] = placed[group_of_param[pid]]

    launchers = {}
    for d in dict.fromkeys(placed.values()):
        d_units = [u for u in units if unit_device.get(u.key) == d]
        scratch = torch.empty(max(max((u.scratch_bytes for u in d_units), default=0), 1), dtype=torch.uint8,
                              device=d)
        if d.type == "cpu":
            launchers[d] = _runtime.Cpu(f, d_units, scratch, threads)
        elif offload:
            launchers[d] = _runtime.GpuOffload(f, d_units, scratch)
        else:
            launchers[d] = _runtime.GpuResident(f, d_units, scratch)

    def set_param(pid, tensor):
        p, hs = holders[pid]
        new = torch.nn.Parameter(tensor, requires_grad=False)
        for mod_name, attr, _ in hs:
            model.get_submodule(mod_name)._parameters[attr] = new

    hook_modules = {}    # module name -> unit keys (one decode hook per unit)
    module_device = {}   # module name -> the device its parameters are on
    resident_bytes = 0
    for pid, (p, hs) in holders.items():
        name = param_file[pid]
        info = f.info(name)
        unit = in_unit.get(name)
        d = placed[group_of_param[pid]]
        for mod_name, _, full in hs:
            module_device[mod_name] = d
            blk = block_of(full)
            if blk is not None:
                module_device[blk[0]] = d
        if unit is not None:
            k = unit.names.index(name)
            scratch = launchers[d].scratch
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
            if tdt is None:  # U16/U32/U64 before torch 2.3, F8 without float8: no tensor of that type
                raise UsageError(f"{shown}: tensor {info['name']!r} is {info['dtype']}, which this torch "
                                 f"({torch.__version__}) has no dtype for", "Usage")
            t = torch.from_numpy(np.ascontiguousarray(host).view(np.uint8)).view(tdt).reshape(info["shape"])
            t = t.to(device=d, dtype=p.dtype)
            set_param(pid, t)
            resident_bytes += t.numel() * t.element_size()

    # Buffers (rotary tables, masks) were built on the CPU: move them to
    # their module's device (model-level ones to the first device).
    first = next(iter(launchers)) if launchers else devices[0]
    for mod_name, mod in model.named_modules():
        target = first
        for cand in (mod_name, group_of(mod_name + ".x") if mod_name else ""):
            if cand in module_device:
                target = module_device[cand]
                break
        for bname, buf in list(mod._buffers.items()):
            if buf is not None and buf.device != target:
                mod._buffers[bname] = buf.to(target)

    by_key = {u.key: u for u in units}
    hooks = []
    if len(set(module_device.values())) > 1:
        # Several devices: inputs follow each block / module to its device.
        # Registered first, so they run before the decode hooks.
        for mod_name in sorted(module_device, key=len):
            parts = mod_name.split(".")
            if any(".".join(parts[:i]) in module_device for i in range(1, len(parts))):
                continue  # an enclosing block already moves the inputs
            d = module_device[mod_name]

            def move_hook(_module, args, kwargs, d=d):
                return _move_to(args, d), _move_to(kwargs, d)

            hooks.append(model.get_submodule(mod_name).register_forward_pre_hook(move_hook, with_kwargs=True))
    # A module whose forward decodes holds the model's lock from its decode
    # to the end of its forward, so that a block or layer called on its own
    # (model.model(ids) for hidden states), from several threads, computes
    # from its own weights; the whole model's forward takes it too (below).
    lock = threading.RLock()

    def take_lock(_module, _args):
        lock.acquire()

    def release_lock(_module, _args, _output):
        try:
            lock.release()
        except RuntimeError:  # an earlier pre-hook raised before take_lock ran
            pass

    decoding_modules = []
    for mod_name, keys in hook_modules.items():
        module = model.get_submodule(mod_name)
        decoding_modules.append(module)
        hooks.append(module.register_forward_pre_hook(take_lock))
        for key in sorted(keys, key=lambda k: by_key[k].order):
            unit = by_key[key]
            launcher = launchers[unit_device[key]]

            def pre_hook(_module, _args, unit=unit, launcher=launcher):
                launcher.launch(unit)

            hooks.append(module.register_forward_pre_hook(pre_hook))
        try:  # always_call: released when the forward raises too (torch >= 2.1)
            hooks.append(module.register_forward_hook(release_lock, always_call=True))
        except TypeError:
            hooks.append(module.register_forward_hook(release_lock))

    state = Df11Model(f, launchers, units, resident_bytes, hooks, placed, lock, decoding_modules, shown)
    model.df11 = state
    model.df11_check = state.check

    def entered():
        if state.closed:
            raise UsageError(f"{shown}: the model's df11 file is closed (model.df11.close())", "Usage")

    # The wrappers reach the model through a weak reference and the class's
    # functions: a bound method kept in the model's own __dict__ would be a
    # reference cycle, and `del model` would keep its file and its GPU images
    # until the garbage collector ran.
    model_ref = weakref.ref(model)
    forward = _wrapped(model, "forward", model_ref, state, entered, check_after=False, shown=shown)
    generate = _wrapped(model, "generate", model_ref, state, entered, check_after=True, shown=shown)
    model.forward = forward
    model.generate = generate
    if units:
        _refuse_moves_and_casts(model, shown, list(launchers))
    model.eval()
    return model


def _wrapped(model, name, model_ref, state, entered, check_after, shown):
    """model.<name> taking the model's lock (one forward at a time), refusing
    a closed model, and checking the decode status after `generate`. Its
    signature is the bound method's (transformers inspects forward's)."""
    bound = getattr(model, name)
    own = model.__dict__.get(name)  # an instance attribute set before us: kept as it is
    func = getattr(type(model), name)

    def call(*args, **kwargs):
        with state.lock:
            entered()
            if own is not None:
                out = own(*args, **kwargs)
            else:
                m = model_ref()
                if m is None:  # `gen = load_model(p).generate`: nothing else kept the model
                    raise UsageError(f"{shown}: the model was freed; keep a reference to the model itself, "
                                     f"not only to its {name}", "Usage")
                out = func(m, *args, **kwargs)
            if check_after:
                state.check()
            return out

    call.__name__ = getattr(bound, "__name__", name)
    call.__qualname__ = getattr(bound, "__qualname__", name)
    call.__doc__ = getattr(bound, "__doc__", None)
    call.__signature__ = inspect.signature(bound)
    return call


def _refuse_moves_and_casts(model, shown, devices):
    """model.float(), .half(), .to(torch.float16), .cuda() on a CPU model...
    would copy the parameters, which are views of the BF16 scratch that each
    block's hook decodes into: the copies would keep whatever the scratch
    held at that moment (NaN logits, or another block's weights), with no
    error. Every module's _apply (what those methods call) first tries the
    conversion on a probe of each device's BF16 and refuses one that changes
    its dtype or device; .to(torch.bfloat16), .eval() and the like pass."""
    probes = [torch.empty(1, dtype=torch.bfloat16, device=d) for d in devices]

    def guard(module):
        # Through a weak reference, as the forward wrappers (no reference cycle).
        module_ref, cls_apply = weakref.ref(module), type(module)._apply

        def _apply(fn, *args, **kwargs):
            for probe in probes:
                out = fn(probe)
                if isinstance(out, torch.Tensor) and (out.dtype != probe.dtype or out.device != probe.device):
                    raise UsageError(
                        f"{shown}: a df11 model's compressed weights stay BF16 on {probe.device}: "
                        f"it cannot be moved or cast (to {out.dtype} on {out.device}); load it with "
                        f"load_model(..., device=, dtype=) instead", "Usage")
            return cls_apply(module_ref(), fn, *args, **kwargs)

        module._apply = _apply

    for module in model.modules():
        guard(module)
