"""load_model on the GPU, resident and offloaded: generation and every
step's logits equal to transformers' BF16 model. Skips, and says so, without
torch, transformers, a GPU, or a libdf11 built with CUDA that sees the GPU."""
import pytest

torch = pytest.importorskip("torch", reason="skipped: torch not installed")
if not torch.cuda.is_available():
    pytest.skip("skipped: no CUDA GPU visible to torch", allow_module_level=True)


transformers = pytest.importorskip("transformers", reason="skipped: transformers not installed")
from tiny_models import KINDS, forwards_in_threads, greedy, make_model_dirs  # noqa: E402


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, cli, gpu):
    root = str(tmp_path_factory.mktemp("gpumodels"))
    return make_model_dirs(cli, root)


@pytest.mark.parametrize("offload", [False, True], ids=["resident", "offload"])
@pytest.mark.parametrize("kind", KINDS)
def test_load_model_generation_identical(model_dirs, kind, offload):
    import df11.torch
    src, packed = model_dirs[kind]
    ref = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).to("cuda").eval()
    model = df11.torch.load_model(packed, device="cuda", offload=offload, standalone_min_bytes=0)
    ids = torch.tensor([[1, 7, 42, 300, 5], [9, 8, 7, 6, 5]], device="cuda")
    with torch.no_grad():
        for _ in range(3):  # repeated forwards: the offload prefetcher goes round its ring
            assert torch.equal(model(ids).logits, ref(ids).logits)
        seq_ref, logits_ref = greedy(ref, ids, 16)
        seq, logits = greedy(model, ids, 16)
    assert torch.equal(seq, seq_ref)
    for step, (a, b) in enumerate(zip(logits, logits_ref)):
        assert torch.equal(a, b), f"{kind}: logits differ at step {step}"
    model.df11_check()
    scratch = model.df11.launcher.scratch
    assert scratch.is_cuda
    for name, p in model.named_parameters():
        assert p.is_cuda, name
        if p.ndim == 2:
            assert scratch.data_ptr() <= p.data_ptr() < scratch.data_ptr() + scratch.numel(), name
    model.df11.close()


def test_load_model_on_a_side_stream(model_dirs):
    """Decodes follow torch's current stream, whatever it is."""
    import df11.torch
    src, packed = model_dirs["llama"]
    ref = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).to("cuda").eval()
    model = df11.torch.load_model(packed, device="cuda", standalone_min_bytes=0)
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]], device="cuda")
    side = torch.cuda.Stream()
    with torch.no_grad():
        expect = ref(ids).logits
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            got = model(ids).logits
        torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(got, expect)
    model.df11_check()


def test_offload_keeps_images_off_the_gpu(model_dirs):
    import df11.torch
    _, packed = model_dirs["llama"]
    model = df11.torch.load_model(packed, device="cuda", offload=True, standalone_min_bytes=0)
    launcher = model.df11.launcher
    assert all(h.is_pinned() for h in launcher.host_images.values())
    assert len(launcher.slots) == 2
    assert launcher.slot_bytes < launcher.image_bytes  # two slots, not every image
    model.df11.close()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_device_map_on_one_gpu(model_dirs, kind, gpu):
    """Issue 14's placement on one GPU: a map naming it, and 'auto' under a
    max_memory it fits; a max_memory it does not fit is a named error."""
    import df11.torch
    src, packed = model_dirs[kind]
    ref = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).to("cuda").eval()
    ids = torch.tensor([[1, 7, 42, 300, 5]], device="cuda")
    with torch.no_grad():
        expect = ref(ids).logits
    for kw in ({"device_map": {"": "cuda:0"}}, {"device_map": "auto", "max_memory": {0: "1GiB"}}):
        model = df11.torch.load_model(packed, standalone_min_bytes=0, **kw)
        assert set(model.df11.placement.values()) == {torch.device("cuda", 0)}, kw
        with torch.no_grad():
            assert torch.equal(model(ids).logits, expect), kw
        model.df11_check()
        model.df11.close()
    with pytest.raises(gpu.UsageError) as e:
        df11.torch.load_model(packed, device_map="auto", max_memory={0: 1000})
    assert e.value.name == "ModelDoesNotFit"


@pytest.mark.parametrize("offload", [False, True], ids=["resident", "offload"])
def test_gpu_model_refuses_moves_and_casts_and_takes_turns(model_dirs, df11mod, offload):
    """.cpu() or .float() would copy the scratch views as they stood; forwards
    from several threads would decode into one scratch at once."""
    import df11.torch
    src, packed = model_dirs["llama"]
    ref = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).to("cuda").eval()
    model = df11.torch.load_model(packed, device="cuda", offload=offload, standalone_min_bytes=0)
    for cast in (lambda m: m.cpu(), lambda m: m.float(), lambda m: m.to("cpu"), lambda m: m.half()):
        with pytest.raises(df11mod.UsageError):
            cast(model)
    inputs = [torch.tensor([[1 + k, 7, 42, 300 - k, 5]], device="cuda") for k in range(4)]
    with torch.no_grad():
        expected = [ref(x).logits for x in inputs]
    forwards_in_threads(lambda x: model(x).logits, inputs, expected, rounds=5,
                        sync=torch.cuda.current_stream().synchronize)
    model.df11_check()
    model.df11.close()
