#!/usr/bin/env python3
"""GPU check of `df11 export --format dfloat11` against the real `dfloat11` package (issue 13).

1. Builds a small Llama with transformers from LlamaConfig, random BF16 weights
   (normal, std 0.02 = initializer_range), and saves it with save_pretrained.
2. Runs `df11 export --format dfloat11 DIR -o DIR-DF11` (timed, all cores and -T 1).
3. Loads DIR-DF11 with dfloat11's DFloat11Model.from_pretrained (device cuda).
4. Checks, unit by unit, that DFloat11's own GPU kernel decodes every exported
   unit to the original weights (torch.equal), then that the logits of the DF11
   model equal the BF16 model's (torch.equal) on a few prompts (token ids).
5. Times DFloat11's own compress_model on the same model: on the first
   --compress-blocks transformer blocks only (its encoder is a pure-Python loop),
   extrapolated per weight to all the units df11 compressed; it says so.

Usage (GPU machine, dfloat11 0.5.0 and dahuffman 0.4.2 installed or on PYTHONPATH):
  python3 scripts/dfloat11_interop.py --df11 build/df11 --work /tmp/interop --json-out $OUT/interop.json

Without a GPU, --emulate-kernel replaces cupy with a sequential NumPy/Python
emulation of DFloat11's `decode` kernel and runs everything on the CPU: a
check of the loader path (names, pattern_dict, shapes, logits) on a tiny
model, not of the kernel.

Needs torch, transformers, cupy (unless --emulate-kernel), accelerate, safetensors, numpy. The shims
below only adapt dfloat11 0.5.0 (written for transformers 4.x and setuptools'
pkg_resources) to newer versions; they change nothing in its format, loader
or kernel.
"""
import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import time
import types


def install_shims():
    # dfloat11 0.5.0 finds its PTX with pkg_resources, which new setuptools dropped.
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package, name):
            spec = importlib.util.find_spec(package)
            return os.path.join(os.path.dirname(spec.origin), name)

        shim.resource_filename = resource_filename
        sys.modules["pkg_resources"] = shim
    import transformers
    import transformers.modeling_utils as mu

    # Its loader imports no_init_weights from modeling_utils (moved in transformers 5).
    if not hasattr(mu, "no_init_weights"):
        for mod in ("transformers.initialization", "transformers.utils.init"):
            try:
                mu.no_init_weights = importlib.import_module(mod).no_init_weights
                break
            except (ImportError, AttributeError):
                pass
        else:
            mu.no_init_weights = contextlib.nullcontext
    # Its loader passes torch_dtype= to from_config (renamed dtype= in transformers 5).
    orig = transformers.AutoModelForCausalLM.from_config

    def from_config(config, **kw):
        if "torch_dtype" in kw:
            dt = kw.pop("torch_dtype")
            # No model.to(dt) after: that would also cast buffers such as the
            # rotary inv_freq, which transformers keeps in float32 (and so
            # would change the logits; found on an H100).
            try:
                return orig(config, dtype=dt, **kw)
            except TypeError:
                return orig(config, torch_dtype=dt, **kw)
        return orig(config, **kw)

    transformers.AutoModelForCausalLM.from_config = from_config


def install_fake_cupy():
    """A stand-in for cupy whose 'decode' decodes sequentially on the CPU, reading
    the tensors through their data pointers exactly as the kernel receives them."""
    import ctypes

    import numpy as np

    def view(ptr, n, ctype):
        return np.ctypeslib.as_array((ctype * n).from_address(ptr)) if n else np.zeros(0, dtype=np.uint8)

    def decode(grid, block, shared_mem, args):
        luts_p, codes_p, sm_p, _opos_p, _gaps_p, out_p, n_luts, n_bytes, n = args
        luts = view(luts_p, n_luts * 256, ctypes.c_uint8).reshape(n_luts, 256).tolist()
        codes = view(codes_p, n_bytes, ctypes.c_uint8).tobytes() + bytes(5)
        sm = view(sm_p, n, ctypes.c_uint8).tolist()
        out = view(out_p, n, ctypes.c_uint16)
        lens = luts[n_luts - 1]
        res = [0] * n
        pos = 0
        for i in range(n):
            b = pos >> 3
            w = (int.from_bytes(codes[b:b + 5], "big") >> (8 - (pos & 7))) & 0xFFFFFFFF
            d = luts[0][w >> 24]
            shift = 16
            while d >= 240:
                d = luts[256 - d][(w >> shift) & 0xFF]
                shift -= 8
            pos += lens[d]
            res[i] = ((sm[i] & 0x80) << 8) | (d << 7) | (sm[i] & 0x7F)
        out[:] = np.array(res, dtype=np.uint16)

    class RawModule:
        def __init__(self, *a, **kw):
            pass

        def get_function(self, name):
            return decode

    class Device:
        def __init__(self, *a):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    cp = types.ModuleType("cupy")
    cp.RawModule = RawModule
    cp.cuda = types.SimpleNamespace(Device=Device)
    sys.modules["cupy"] = cp


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--df11", default="build/df11", help="path of the df11 binary")
    ap.add_argument("--work", default="/tmp/df11-interop", help="scratch directory")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=2816)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--compress-blocks", type=int, default=2,
                    help="blocks DFloat11's compress_model is timed on (0: skip)")
    ap.add_argument("--json-out", default="", help="write the summary here too")
    ap.add_argument("--no-load", action="store_true",
                    help="only time df11 export and compress_model (no loading, no GPU needed)")
    ap.add_argument("--emulate-kernel", action="store_true",
                    help="no GPU: emulate DFloat11's kernel on the CPU (use a tiny model)")
    a = ap.parse_args()
    dev = "cpu" if a.emulate_kernel else "cuda"
    if a.emulate_kernel or a.no_load:
        install_fake_cupy()

    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    install_shims()
    import dfloat11
    from dfloat11 import dfloat11 as dfm

    summary = {"device": "cpu, kernel emulated" if a.emulate_kernel else "cpu" if a.no_load else torch.cuda.get_device_name(0), "torch": torch.__version__,
               "dfloat11": getattr(dfm, "version", "?"), "cpu_count": os.cpu_count()}
    import transformers
    summary["transformers"] = transformers.__version__
    os.makedirs(a.work, exist_ok=True)
    bf16_dir, df11_dir = os.path.join(a.work, "llama"), os.path.join(a.work, "llama-DF11")

    # 1. A small Llama with random BF16 weights.
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, vocab_size=a.vocab,
                      max_position_embeddings=512, tie_word_embeddings=False, initializer_range=0.02)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    with torch.no_grad():  # every weight N(0, 0.02), norms too (so nothing is all ones)
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    model.save_pretrained(bf16_dir)
    n_params = sum(p.numel() for p in model.parameters())
    summary["model"] = {"hidden": a.hidden, "intermediate": a.intermediate, "layers": a.layers,
                        "vocab": a.vocab, "parameters": n_params}
    print(f"model: {n_params / 1e6:.1f} M parameters in {bf16_dir}", flush=True)

    # 2. df11 export (timed: all cores, then one thread).
    times = {}
    report = None
    for label, extra in (("all_cores", []), ("one_thread", ["-T", "1"])):
        out = df11_dir if label == "all_cores" else df11_dir + "-T1"
        t0 = time.perf_counter()
        r = subprocess.run([a.df11, "export", "--format", "dfloat11", bf16_dir, "-o", out, "-f", "--json"] + extra,
                           capture_output=True, text=True)
        times[label] = time.perf_counter() - t0
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            raise SystemExit(f"df11 export failed with exit {r.returncode}")
        if report is None:
            report = json.loads(r.stdout)
    weights = sum(u["elements"] for u in report["units"] if u["compressed"])
    summary["df11_export"] = {"seconds": times, "units": len(report["units"]),
                              "units_uncompressed": report["units_uncompressed"],
                              "compressed_weights": weights,
                              "weights_per_second_all_cores": weights / times["all_cores"],
                              "weights_per_second_one_thread": weights / times["one_thread"],
                              "stored_bytes": report["stored_bytes"], "original_bytes": report["original_bytes"],
                              "pattern_dict": report["pattern_dict"]}
    print(f"df11 export: {weights / 1e6:.1f} M weights in {times['all_cores']:.2f} s "
          f"({times['one_thread']:.2f} s with -T 1)", flush=True)

    bad, equal, units_checked = [], [], 0
    if not a.no_load:
        bad, equal, units_checked = check_loaded(a, dfm, df11_dir, bf16_dir, model, dev, summary)
    del model

    # 5. DFloat11's own compress_model, on the first blocks, extrapolated per weight.
    if a.compress_blocks > 0:
        time_compress_model(a, dfm, bf16_dir, report, weights, times, summary)

    ok = not bad and all(equal) and (a.no_load or units_checked == len([u for u in report["units"] if u["compressed"]]))
    summary["ok"] = ok
    text = json.dumps(summary, indent=2)
    print(text)
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(text + "\n")
    return 0 if ok else 1


def check_loaded(a, dfm, df11_dir, bf16_dir, model, dev, summary):
    import torch
    from transformers import AutoModelForCausalLM

    # 3. Load with DFloat11's own loader.
    with contextlib.redirect_stderr(io.StringIO()):
        dmodel = dfm.DFloat11Model.from_pretrained(df11_dir, device=dev, attn_implementation="sdpa")
    dmodel.eval()

    # 4a. Every unit through DFloat11's kernel, compared with the original weights.
    orig = {k: v for k, v in model.state_dict().items()}
    names = {id(m): n for n, m in dmodel.named_modules()}
    hook = dfm.get_hook(dmodel.config.dfloat11_config["threads_per_block"], dmodel.config.dfloat11_config["bytes_per_thread"])
    units_checked, weights_checked, bad = 0, 0, []
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
        for name, m in dmodel.named_modules():
            if not hasattr(m, "encoded_exponent"):
                continue
            hook(m, None)
            if dev == "cuda":
                torch.cuda.synchronize()
            subs = [m] if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)) else m.weight_injection_modules
            for s in subs:
                wname = names[id(s)] + ".weight"
                if not torch.equal(s.weight.cpu(), orig[wname]):
                    bad.append(wname)
                weights_checked += 1
            units_checked += 1
    summary["kernel_decode"] = {"units": units_checked, "weights": weights_checked, "mismatches": bad}
    print(f"DFloat11 kernel: {units_checked} units, {weights_checked} weights, {len(bad)} mismatches", flush=True)

    # 4b. Logits, BF16 model (loaded as transformers loads it) against the DF11 model.
    del model
    model = AutoModelForCausalLM.from_pretrained(bf16_dir, dtype=torch.bfloat16, attn_implementation="sdpa").to(dev).eval()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, a.vocab, (1, 16), generator=g), torch.randint(0, a.vocab, (2, 48), generator=g),
               torch.randint(0, a.vocab, (4, 128), generator=g)]
    equal = []
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
        for ids in prompts:
            ids = ids.to(dev)
            ref = model(ids).logits
            got = dmodel(ids).logits
            equal.append(bool(torch.equal(ref, got)))
    summary["logits_equal"] = equal
    print(f"logits torch.equal on {len(prompts)} prompts: {equal}", flush=True)
    if not all(equal):
        summary["diagnosis"] = diagnose(model, dmodel, prompts[0].to(dev))
    del dmodel, model
    return bad, equal, units_checked


def diagnose(model, dmodel, ids):
    """Where the two models part, when their logits differ: the tensors they
    share (parameters and buffers), the first hidden state that differs, and
    whether a matmul gives other bits on a decoded weight (a view into
    DFloat11's shared buffer) than on a contiguous copy of it."""
    import torch
    import torch.nn.functional as F

    out = {}
    ref_t = dict(model.named_parameters())
    ref_t.update(dict(model.named_buffers()))
    got_t = dict(dmodel.named_parameters())
    got_t.update(dict(dmodel.named_buffers()))
    differ = []
    for k, v in ref_t.items():
        if k in got_t and got_t[k].shape == v.shape:
            w = got_t[k]
            if w.dtype != v.dtype or not torch.equal(w.to(v.device), v):
                differ.append(f"{k} ({v.dtype} vs {w.dtype})")
    out["shared_tensors_compared"] = sum(1 for k in ref_t if k in got_t)
    out["shared_tensors_differing"] = differ[:20]
    with torch.no_grad():
        r = model(ids, output_hidden_states=True)
        g = dmodel(ids, output_hidden_states=True)
        out["logits_max_abs_diff"] = float((r.logits.float() - g.logits.float()).abs().max())
        first = None
        for i, (a, b) in enumerate(zip(r.hidden_states, g.hidden_states)):
            if not torch.equal(a, b):
                first = i
                break
        out["first_differing_hidden_state"] = first
        # A decoded weight as the model uses it (after the forward above, the
        # last block's views) against a contiguous copy of the same bits.
        lin = [m for m in dmodel.modules() if isinstance(m, torch.nn.Linear) and m.weight.storage_offset() > 0]
        if lin:
            w = lin[0].weight
            x = torch.randn(4, w.shape[1], dtype=w.dtype, device=w.device)
            out["view_matmul_equal_to_copy"] = bool(torch.equal(F.linear(x, w), F.linear(x, w.clone())))
            out["view_storage_offset_bytes"] = int(w.storage_offset() * w.element_size())
    print("diagnosis:", json.dumps(out), flush=True)
    return out


def time_compress_model(a, dfm, bf16_dir, report, weights, times, summary):
    import torch
    from transformers import AutoModelForCausalLM

    fresh = AutoModelForCausalLM.from_pretrained(bf16_dir, dtype=torch.bfloat16)
    layers_pattern = {k: v for k, v in report["pattern_dict"].items() if "layers" in k}
    per_block = sum(u["elements"] for u in report["units"] if "layers" in u["module"]) // a.layers
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        dfm.compress_model(fresh, layers_pattern, os.path.join(a.work, "official"),
                           block_range=[0, a.compress_blocks], save_single_file=False, check_correctness=False)
    secs = time.perf_counter() - t0
    done = per_block * a.compress_blocks
    rate = done / secs
    summary["dfloat11_compress_model"] = {
        "blocks_timed": a.compress_blocks, "weights_timed": done, "seconds": secs,
        "weights_per_second": rate,
        "extrapolated_seconds_for_all_units": weights / rate,
        "note": "timed on the first blocks only (pure-Python encoder, one process), extrapolated per weight"}
    print(f"DFloat11 compress_model: {done / 1e6:.1f} M weights in {secs:.1f} s ({rate / 1e6:.2f} M/s); "
          f"all {weights / 1e6:.1f} M weights: ~{weights / rate:.0f} s (extrapolated) vs df11 "
          f"{times['all_cores']:.2f} s", flush=True)

if __name__ == "__main__":
    sys.exit(main())
