"""Grouping and placement from tensor names alone (pure Python: no torch, no library)."""
import pytest

from df11.torch._layout import PlacementError, block_of, group_of, place_groups, plan_units


@pytest.mark.parametrize("name,expect", [
    ("model.layers.3.mlp.up_proj.weight", ("model.layers.3", 3)),
    ("transformer.h.11.attn.c_attn.weight", ("transformer.h.11", 11)),
    ("blocks.2.attn.qkv.weight", ("blocks.2", 2)),
    ("h.0.ln_1.weight", ("h.0", 0)),
    ("model.layers.3.block_sparse_moe.experts.7.w1.weight", ("model.layers.3", 3)),
    ("model.vision.layers.1.blocks.4.w", ("model.vision.layers.1", 1)),  # the first (outermost) match
    ("model.embed_tokens.weight", None),
    ("lm_head.weight", None),
    ("model.layers.x.weight", None),
    ("model.hidden.0.weight", None),  # 'hidden' is not 'h'
])
def test_block_of(name, expect):
    assert block_of(name) == expect


def info(i, name, shape, dtype="BF16", encoding="bf16-huffman"):
    n = 2
    for d in shape:
        n *= d
    return {"index": i, "name": name, "dtype": dtype, "shape": shape, "encoding": encoding, "original_bytes": n}


INFOS = [
    info(0, "model.embed_tokens.weight", (1000, 64)),
    info(1, "model.layers.0.self_attn.q_proj.weight", (64, 64)),
    info(2, "model.layers.0.mlp.up_proj.weight", (160, 64)),
    info(3, "model.layers.0.input_layernorm.weight", (64,)),
    info(4, "model.layers.1.self_attn.q_proj.weight", (64, 64)),
    info(5, "model.layers.1.self_attn.q_proj.bias", (64,), "F32", "zstd"),
    info(6, "model.layers.1.mlp.up_proj.weight", (160, 64), encoding="raw"),
    info(7, "model.norm.weight", (64,)),
    info(8, "lm_head.weight", (1000, 64)),
    info(9, "model.pos.weight", (10, 64)),
]


def test_plan_units_groups_blocks_and_standalone():
    units, resident = plan_units(INFOS, standalone_min_bytes=2000)
    assert [u.key for u in units] == ["model.embed_tokens.weight", "model.layers.0", "model.layers.1",
                                      "lm_head.weight"]
    assert units[1].names == ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight"]
    # Outputs are 256-byte aligned in the scratch, one after the other.
    assert units[1].offsets == [0, 64 * 64 * 2]
    assert units[1].scratch_bytes == 64 * 64 * 2 + 160 * 64 * 2
    # 1-D, non-BF16, non-Huffman, and small stand-alone matrices are resident.
    assert set(resident) == {"model.layers.0.input_layernorm.weight", "model.layers.1.self_attn.q_proj.bias",
                             "model.layers.1.mlp.up_proj.weight", "model.norm.weight", "model.pos.weight"}


def test_plan_units_wanted_and_alignment():
    infos = [info(0, "h.0.a.weight", (3, 5)), info(1, "h.0.b.weight", (7, 11))]
    units, resident = plan_units(infos, wanted={"h.0.a.weight", "h.0.b.weight"})
    assert units[0].offsets == [0, 256] and units[0].scratch_bytes == 256 + 256
    units, resident = plan_units(infos, wanted={"h.0.b.weight"})
    assert units[0].names == ["h.0.b.weight"] and resident == []


def test_group_of():
    assert group_of("model.layers.7.mlp.up_proj.weight") == "model.layers.7"
    assert group_of("lm_head.weight") == "lm_head"
    assert group_of("model.norm.weight") == "model.norm"


GROUPS = [("embed", 10, 5), ("layers.0", 20, 8), ("layers.1", 20, 8), ("norm", 1, 0), ("lm_head", 10, 5)]


def test_place_auto_fills_devices_in_order():
    # Device 0: 10 + 20 bytes + a scratch of 8 = 38 <= 40; layers.1 would make 58.
    assert place_groups(GROUPS, [0, 1], {0: 40, 1: 40}) == {
        "embed": 0, "layers.0": 0, "layers.1": 1, "norm": 1, "lm_head": 1}
    assert set(place_groups(GROUPS, [0, 1]).values()) == {0}  # no limit: all on the first
    assert set(place_groups(GROUPS, ["cuda:0"], {"cuda:0": 1000}).values()) == {"cuda:0"}


def test_place_auto_does_not_fit():
    with pytest.raises(PlacementError) as e:
        place_groups(GROUPS, [0, 1], {0: 20, 1: 20})
    assert "layers.0" in str(e.value)


def test_place_with_a_map():
    m = place_groups(GROUPS, [0, 1], device_map={"": 0, "layers.1": 1, "lm_head": 1})
    assert m == {"embed": 0, "layers.0": 0, "layers.1": 1, "norm": 0, "lm_head": 1}
    with pytest.raises(PlacementError):
        place_groups(GROUPS, [0], device_map={"layers": 0})  # names nothing for 'embed'
    # A prefix matches whole components only: 'layers.1' is not 'layers.10'.
    m = place_groups([("layers.10", 1, 0)], [0, 1], device_map={"": 0, "layers.1": 1})
    assert m == {"layers.10": 0}
