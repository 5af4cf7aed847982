"""GPU path of the binding: f.read(name, device="cuda") and plans over torch
memory, byte-identical to the original. Skips, and says so, without torch,
without a GPU, or with a libdf11 built without CUDA."""
import pytest

import st_io

torch = pytest.importorskip("torch", reason="skipped: torch not installed")
if not torch.cuda.is_available():
    pytest.skip("skipped: no CUDA GPU visible to torch", allow_module_level=True)


def as_bytes(t):
    return t.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy().tobytes()


def test_read_cuda_every_tensor_identical(gpu, sample_file):
    src, packed = sample_file
    original = st_io.read(src)
    with gpu.open(packed) as f:
        for name, (dtype, shape, raw) in original.items():
            t = f.read(name, device="cuda")
            assert isinstance(t, torch.Tensor) and t.is_cuda
            assert tuple(t.shape) == shape, name
            if dtype == "BF16":
                assert t.dtype == torch.bfloat16
            assert as_bytes(t) == raw, f"{name}: GPU-decoded bytes differ from the original"


def test_read_cuda_on_a_side_stream(gpu, sample_dir):
    src, packed = sample_dir
    original = st_io.read_dir(src)
    side = torch.cuda.Stream()
    with gpu.open(packed) as f, torch.cuda.stream(side):
        for name, (_, _, raw) in original.items():
            assert as_bytes(f.read(name, device="cuda:0")) == raw, name


def test_plan_over_torch_memory_many_launches(gpu, sample_file):
    """A plan built once, launched many times into the same outputs, with the
    outputs poisoned before each launch: every element is rewritten."""
    from df11._gpu import Plan
    src, packed = sample_file
    original = st_io.read(src)
    names = ["model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.q_proj.weight",
             "model.embed_tokens.weight"]
    with gpu.open(packed) as f:
        idx = [f.info(n)["index"] for n in names]
        size = f.image_size(idx)
        host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        f.pack_into(idx, host.data_ptr(), size)
        image = host.cuda()
        outs = [torch.empty(f.info(n)["shape"], dtype=torch.bfloat16, device="cuda") for n in names]
        plan = Plan(f, idx, image, outs)
        for rep in range(5):
            for o in outs:
                o.view(torch.int16).fill_(-1 - rep)
            plan.launch()
            plan.check()
            for n, o in zip(names, outs):
                assert as_bytes(o) == original[n][2], f"{n}, launch {rep}"
        plan.close()


def test_many_plans_launched_after_all_are_created(gpu, sample_file):
    """Plans of different sizes coexist: each launch must work whatever plan
    was created last (the kernel's shared-memory limit is per kernel, not
    per plan; a regression here failed with cudaErrorInvalidValue)."""
    from df11._gpu import Plan
    src, packed = sample_file
    original = st_io.read(src)
    with gpu.open(packed) as f:
        names = [n for n in f.names() if f.info(n)["encoding"] == "bf16-huffman" and f.info(n)["original_bytes"]]
        # Largest first, so that later plans need less than earlier ones.
        names.sort(key=lambda n: -f.info(n)["original_bytes"])
        plans = []
        for n in names:
            i = f.info(n)["index"]
            image = torch.empty(f.image_size([i]), dtype=torch.uint8, device="cuda")
            host = torch.empty(image.numel(), dtype=torch.uint8)
            f.pack_into([i], host.data_ptr(), host.numel())
            image.copy_(host)
            out = torch.full(f.info(n)["shape"], float("nan"), dtype=torch.bfloat16, device="cuda")
            plans.append((n, Plan(f, [i], image, [out]), out))
        for n, plan, out in plans:
            plan.launch()
            plan.check()
            assert as_bytes(out) == original[n][2], n
        for _, plan, _ in plans:
            plan.close()


def test_plan_rejects_wrong_output(gpu, sample_file):
    from df11._gpu import Plan
    _, packed = sample_file
    with gpu.open(packed) as f:
        i = f.info("model.embed_tokens.weight")["index"]
        size = f.image_size([i])
        image = torch.zeros(size, dtype=torch.uint8, device="cuda")
        with pytest.raises(gpu.UsageError):
            Plan(f, [i], image, [torch.empty(3, dtype=torch.bfloat16, device="cuda")])


