"""load_model on the CPU (device="cpu"): the binding of parameters to the
shared scratch, the hooks, tied embeddings and GPT-2's Conv1D, without a GPU.
Skips when torch or transformers is absent."""
import pytest

torch = pytest.importorskip("torch", reason="skipped: torch not installed")
transformers = pytest.importorskip("transformers", reason="skipped: transformers not installed")

from tiny_models import KINDS, forwards_in_threads, greedy, make_model_dirs  # noqa: E402


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, cli, df11mod):
    root = str(tmp_path_factory.mktemp("models"))
    return make_model_dirs(cli, root)


def reference(src):
    return transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).eval()


@pytest.mark.parametrize("kind", KINDS)
def test_cpu_generation_identical(model_dirs, kind):
    import df11.torch
    src, packed = model_dirs[kind]
    ref = reference(src)
    model = df11.torch.load_model(packed, device="cpu", standalone_min_bytes=0)
    ids = torch.tensor([[1, 7, 42, 300, 5], [9, 8, 7, 6, 5]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)
        seq_ref, logits_ref = greedy(ref, ids, 12)
        seq, logits = greedy(model, ids, 12)
    assert torch.equal(seq, seq_ref)
    assert len(logits) == len(logits_ref) == 12
    for step, (a, b) in enumerate(zip(logits, logits_ref)):
        assert torch.equal(a, b), f"{kind}: logits differ at step {step}"
    model.df11_check()


@pytest.mark.parametrize("kind", KINDS)
def test_blocks_share_one_scratch(model_dirs, kind):
    import df11.torch
    _, packed = model_dirs[kind]
    model = df11.torch.load_model(packed, device="cpu", standalone_min_bytes=0)
    state = model.df11
    scratch = state.launcher.scratch
    lo, hi = scratch.data_ptr(), scratch.data_ptr() + scratch.numel()
    n_blocks = model.config.num_hidden_layers
    blocks = [u for u in state.units if u.order[0] == 1]
    assert len(blocks) == n_blocks
    # The scratch is sized for the largest unit, not for the sum.
    assert scratch.numel() == max(u.scratch_bytes for u in state.units)
    assert scratch.numel() < sum(u.scratch_bytes for u in state.units)
    matrices = 0
    for name, p in model.named_parameters():
        if p.ndim == 2:
            assert lo <= p.data_ptr() < hi, f"{name} is not a view of the scratch"
            matrices += 1
        else:
            assert not (lo <= p.data_ptr() < hi), f"{name} should be resident"
    assert matrices > 0
    # One launch per block and per standalone unit use, per forward.
    before = state.launcher.launches
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]))
    standalone_uses = {"gpt2": 3, "llama": 2, "llama-tied": 2}[kind]  # gpt2: wte, wpe, lm_head(=wte)
    assert state.launcher.launches - before == n_blocks + standalone_uses


def test_gpt2_tied_and_conv1d(model_dirs):
    import df11.torch
    _, packed = model_dirs["gpt2"]
    model = df11.torch.load_model(packed, device="cpu", standalone_min_bytes=0)
    assert model.lm_head.weight is model.transformer.wte.weight
    attn = model.transformer.h[0].attn.c_attn.weight
    assert tuple(attn.shape) == (64, 192)  # Conv1D: [in, out] as in the file


def test_default_threshold_keeps_small_embeddings_resident(model_dirs):
    import df11.torch
    _, packed = model_dirs["llama"]
    model = df11.torch.load_model(packed, device="cpu")
    # 512x64 BF16 embeddings are far under 16 MiB: loaded once, only blocks decode.
    assert all(u.order[0] == 1 for u in model.df11.units)


def test_missing_config_is_an_error(model_dirs, tmp_path, df11mod, cli):
    import glob
    import os
    import subprocess
    import df11.torch
    # A path that is not there is named as such (it was "no config.json").
    with pytest.raises(df11mod.InputError) as e:
        df11.torch.load_model(str(tmp_path / "nope.df11"), device="cpu")
    assert e.value.name == "Io"
    # A df11 file (not a model directory) has no config.json.
    src, _ = model_dirs["llama"]
    one = str(tmp_path / "one.df11")
    shard = sorted(glob.glob(os.path.join(src, "*.safetensors")))[0]
    subprocess.run([cli, "compress", "-q", shard, "-o", one], check=True)
    with pytest.raises(df11mod.UsageError) as e:
        df11.torch.load_model(one, device="cpu")
    assert "config.json" in str(e.value)


def test_devices_that_cannot_be_had_are_df11_errors(model_dirs, df11mod):
    """Not torch's multi-line RuntimeError or TypeError: one line, a df11 name."""
    import df11.torch
    _, packed = model_dirs["llama"]
    for device in ("gpu", None, "cuda:x"):
        with pytest.raises(df11mod.UsageError) as e:
            df11.torch.load_model(packed, device=device)
        assert "\n" not in str(e.value)
    if not torch.cuda.is_available():
        with pytest.raises(df11mod.InputError) as e:
            df11.torch.load_model(packed)  # the default device is "cuda"
        assert e.value.name == "CudaUnavailable"


def test_forwards_from_several_threads_are_identical(model_dirs):
    """Every block decodes into one scratch buffer: forwards from several
    threads at once used to overwrite each other's weights (wrong logits, and
    Df11TensorChecksum blaming a sound file). They now take turns."""
    import df11.torch
    src, packed = model_dirs["llama"]
    ref = reference(src)
    model = df11.torch.load_model(packed, device="cpu", standalone_min_bytes=0)
    inputs = [torch.tensor([[1 + k, 7, 42, 300 - k, 5]]) for k in range(4)]
    with torch.no_grad():
        expected = [ref(x).logits for x in inputs]
    forwards_in_threads(lambda x: model(x).logits, inputs, expected, rounds=6)
    # The base model alone (for hidden states) too: each block holds the lock
    # from its decode to the end of its forward.
    with torch.no_grad():
        hidden = [ref.model(x).last_hidden_state for x in inputs]
    forwards_in_threads(lambda x: model.model(x).last_hidden_state, inputs, hidden, rounds=6)
    model.df11_check()


def test_casts_and_moves_are_refused(model_dirs, df11mod):
    """.float() copied the scratch views as they stood: NaN logits, no error."""
    import df11.torch
    src, packed = model_dirs["llama"]
    model = df11.torch.load_model(packed, device="cpu", standalone_min_bytes=0)
    for cast in (lambda m: m.float(), lambda m: m.half(), lambda m: m.to(torch.float16), lambda m: m.double(),
                 lambda m: m.model.layers[0].float(), lambda m: m.to("meta")):
        with pytest.raises(df11mod.UsageError) as e:
            cast(model)
        assert "cannot be moved or cast" in str(e.value)
    # What leaves the weights where they are passes, and the model computes as
    # the reference does after the same call (.to(torch.bfloat16) also casts
    # float32 buffers such as rotary tables, in both).
    ids = torch.tensor([[1, 7, 42, 300, 5]])
    model = model.cpu().eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(src)(ids).logits)
        model = model.to(torch.bfloat16)
        assert torch.equal(model(ids).logits, reference(src).to(torch.bfloat16)(ids).logits)


def test_forward_after_close_is_an_error(model_dirs, df11mod):
    import df11.torch
    _, packed = model_dirs["llama"]
    model = df11.torch.load_model(packed, device="cpu")
    model.df11.close()
    ids = torch.tensor([[1, 7, 42]])
    with pytest.raises(df11mod.UsageError) as e:
        model(ids)
    assert "closed" in str(e.value)
    with pytest.raises(df11mod.UsageError):
        model.generate(ids, max_new_tokens=2)
    with pytest.raises(df11mod.UsageError) as e:  # a block called on its own: no stale weights either
        model.model(ids)
    assert "closed" in str(e.value)


def test_a_kept_method_of_a_freed_model_is_an_error(model_dirs, df11mod):
    import df11.torch
    _, packed = model_dirs["llama"]
    generate = df11.torch.load_model(packed, device="cpu").generate  # the model itself is not kept
    with pytest.raises(df11mod.UsageError) as e:
        generate(torch.tensor([[1, 7, 42]]), max_new_tokens=2)
    assert "the model was freed" in str(e.value)


def test_offload_needs_cuda(model_dirs, df11mod):
    import df11.torch
    with pytest.raises(df11mod.UsageError):
        df11.torch.load_model(model_dirs["llama"][1], device="cpu", offload=True)


def test_device_map_naming_the_cpu(model_dirs):
    """The placement path (issue 14) with a map that names one device."""
    import df11.torch
    src, packed = model_dirs["llama"]
    ref = reference(src)
    model = df11.torch.load_model(packed, device="cpu", device_map={"": "cpu"}, standalone_min_bytes=0)
    assert set(model.df11.placement.values()) == {torch.device("cpu")}
    assert "model.layers.2" in model.df11.placement and "lm_head" in model.df11.placement
    ids = torch.tensor([[1, 7, 42, 300, 5]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)


def test_device_map_auto_needs_cuda(model_dirs, df11mod):
    import df11.torch
    if torch.cuda.is_available():
        pytest.skip("skipped: a GPU is present (the GPU tests cover device_map='auto')")
    with pytest.raises(df11mod.UsageError):
        df11.torch.load_model(model_dirs["llama"][1], device_map="auto")


def test_model_tensor_missing(model_dirs, df11mod):
    """A config with one block more than the checkpoint: named error, no model."""
    import df11.torch
    src, packed = model_dirs["llama"]
    cfg = transformers.AutoConfig.from_pretrained(packed)
    cfg.num_hidden_layers += 1
    with pytest.raises(df11mod.UsageError) as e:
        df11.torch.load_model(packed, device="cpu", config=cfg)
    assert e.value.name == "ModelTensorMissing"
    assert "model.layers.3." in str(e.value)


def test_model_shape_mismatch(model_dirs, df11mod):
    import df11.torch
    src, packed = model_dirs["llama"]
    cfg = transformers.AutoConfig.from_pretrained(packed)
    cfg.intermediate_size += 8
    with pytest.raises(df11mod.UsageError) as e:
        df11.torch.load_model(packed, device="cpu", config=cfg)
    assert e.value.name == "ModelShapeMismatch"
    assert "mlp" in str(e.value)


def test_del_model_frees_it_at_once(model_dirs, df11mod):
    """No reference cycle through the wrappers: `del model` closes its file
    (and frees GPU images) then, not when the garbage collector runs."""
    import gc
    import weakref
    import df11.torch
    _, packed = model_dirs["llama"]
    gc.collect()
    gc.disable()
    try:
        model = df11.torch.load_model(packed, device="cpu", standalone_min_bytes=0)
        ids = torch.tensor([[1, 7, 42]])
        with torch.no_grad():
            model(ids)
            model.generate(ids, max_new_tokens=2, do_sample=False, pad_token_id=0)
        alive = weakref.ref(model)
        del model
        assert alive() is None, [type(r).__name__ for r in gc.get_referrers(alive())]
    finally:
        gc.enable()
