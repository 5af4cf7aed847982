"""Which tensors of a checkpoint stay compressed, and how they are grouped.

Found from tensor names alone, with no per-model configuration:
- a *block* is the prefix up to `layers.N`, `h.N` or `blocks.N` (the first
  such component of the name: `model.layers.3.mlp.up_proj.weight` belongs to
  `model.layers.3`); every 2-D BF16-Huffman tensor of a block goes into the
  block's unit, decoded in one launch before the block's forward;
- every other 2-D BF16-Huffman tensor of at least `standalone_min_bytes`
  (the embeddings, lm_head) is a unit of its own, decoded on use;
- everything else (norms, biases, small or uncompressed tensors) is
  *resident*: decoded once at load time.
Pure Python (no torch), so that it can be tested anywhere.
"""
import re
from dataclasses import dataclass, field

BLOCK_RE = re.compile(r"^((?:.*?\.)?(?:layers|h|blocks)\.(\d+))\.")
SCRATCH_ALIGN = 256  # each output starts 256-byte aligned in the scratch buffer
DEFAULT_STANDALONE_MIN_BYTES = 16 << 20


def block_of(name):
    """(block prefix, block number) of a tensor name, or None outside blocks."""
    m = BLOCK_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def align_up(n, a=SCRATCH_ALIGN):
    return (n + a - 1) // a * a


@dataclass
class Unit:
    """Tensors decoded together in one launch into the shared scratch."""
    key: str                      # block prefix, or the tensor name for a standalone unit
    order: tuple                  # sort key: model order of first use (see plan_units)
    indices: list = field(default_factory=list)   # file tensor indices
    names: list = field(default_factory=list)
    offsets: list = field(default_factory=list)   # byte offset of each output in the scratch
    nbytes: list = field(default_factory=list)    # original bytes of each
    scratch_bytes: int = 0        # bytes of scratch this unit needs

    def add(self, index, name, nbytes):
        self.indices.append(index)
        self.names.append(name)
        self.offsets.append(self.scratch_bytes)
        self.nbytes.append(nbytes)
        self.scratch_bytes = align_up(self.scratch_bytes + nbytes)


def is_compressible_matrix(info):
    return info["dtype"] == "BF16" and len(info["shape"]) == 2 and info["encoding"] == "bf16-huffman" \
        and info["original_bytes"] > 0


def plan_units(infos, standalone_min_bytes=DEFAULT_STANDALONE_MIN_BYTES, wanted=None):
    """Groups tensors into units.

    infos: the File's per-tensor dicts (name, dtype, shape, encoding,
    original_bytes, index). wanted: names to consider (None: all).
    Returns (units in a likely order of use, names of resident tensors).
    Order: standalone units whose name says input embedding first, then
    blocks by number, then the other standalone units (lm_head); the
    offloading prefetcher starts from it and follows the real order after."""
    blocks, standalone, resident = {}, {}, []
    for info in infos:
        name = info["name"]
        if wanted is not None and name not in wanted:
            continue
        if not is_compressible_matrix(info):
            resident.append(name)
            continue
        blk = block_of(name)
        if blk is not None:
            unit = blocks.get(blk[0])
            if unit is None:
                unit = blocks[blk[0]] = Unit(key=blk[0], order=(1, blk[1], blk[0]))
            unit.add(info["index"], name, info["original_bytes"])
        elif info["original_bytes"] >= standalone_min_bytes:
            first = any(k in name for k in ("embed", "wte", "tok_embeddings", "word_embeddings"))
            unit = Unit(key=name, order=(0 if first else 2, 0, name))
            unit.add(info["index"], name, info["original_bytes"])
            standalone[name] = unit
        else:
            resident.append(name)
    units = sorted(list(blocks.values()) + list(standalone.values()), key=lambda u: u.order)
    return units, resident


class PlacementError(ValueError):
    """The groups do not fit the devices' max_memory."""


def group_of(model_name):
    """Placement group of a parameter's model name: its block, else its module."""
    blk = block_of(model_name)
    return blk[0] if blk is not None else model_name.rpartition(".")[0]


def place_groups(groups, devices, max_memory=None, device_map="auto"):
    """Assigns whole groups (blocks, or the modules outside blocks) to devices.

    groups: ordered list of (name, bytes, scratch_bytes): bytes the group
    keeps on its device (compressed images and resident tensors), and the
    scratch its largest unit needs (0 when none). A device holds one scratch
    sized for the largest unit placed on it.
    device_map "auto": in order, each group on the current device while that
    device's bytes plus its scratch stay within max_memory[device] (no limit
    when absent), else on the next device. device_map dict: {module prefix:
    device}, the longest prefix of the group's name wins ("" matches all).
    Returns {group name: device}."""
    max_memory = max_memory or {}
    if device_map != "auto":
        out = {}
        for name, _, _ in groups:
            best = None
            for prefix, dev in device_map.items():
                if prefix == "" or name == prefix or name.startswith(prefix + "."):
                    if best is None or len(prefix) > len(best[0]):
                        best = (prefix, dev)
            if best is None:
                raise PlacementError(f"device_map names no device for '{name}'")
            out[name] = best[1]
        return out
    out = {}
    d, used, scratch = 0, 0, 0
    for name, nbytes, need in groups:
        while True:
            if d >= len(devices):
                raise PlacementError(f"'{name}' ({nbytes} bytes) fits on none of {list(devices)} "
                                     f"under max_memory {max_memory}")
            limit = max_memory.get(devices[d])
            if limit is None or used + nbytes + max(scratch, need) <= limit:
                break
            d, used, scratch = d + 1, 0, 0  # the next device, empty
        out[name] = devices[d]
        used += nbytes
        scratch = max(scratch, need)
    return out
