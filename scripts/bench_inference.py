#!/usr/bin/env python3
"""Inference from .df11 against BF16 (issue 12): bit-identity, tokens/s, memory.

For each model: build it from a transformers config with random BF16
weights at a trained model's spread (std 0.02, transformers' own init),
save it as sharded safetensors in /dev/shm, compress it with the df11 CLI,
then in one process:
  1. BF16 model fully on the GPU (from_pretrained): greedy generation of
     --tokens tokens, every step's logits kept; tokens/s at each batch;
  2. df11.torch.load_model (weights compressed on the GPU): the same greedy
     generation, sequences and every step's logits torch.equal to (1);
     tokens/s; GPU memory;
  3. df11 with offload=True (images in pinned host memory): tokens/s;
  4. BF16 with accelerate CPU offload (device_map="auto") under a GPU
     memory cap that BF16 does not fit and df11 does: tokens/s;
  5. the decode time of every unit's plan launch (CUDA events, median),
     summed over one forward, against the extra time per token over BF16
     at batch 1.
Numbers go to stdout (a table last) and to --out/bench_NAME.json.

  DF11_LIBRARY=... python3 scripts/bench_inference.py --cli PATH/df11 \
      --models gpt2,llama-1b,llama-8b --out $OUT

--smoke runs the same flow with tiny models and few tokens (on the CPU when
no GPU is present: checks the script, measures nothing).
"""
import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import df11  # noqa: E402
import df11.torch  # noqa: E402

GIB = 1 << 30


def configs(smoke):
    import transformers as tf
    if smoke:
        return {
            "gpt2": tf.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=512, n_positions=256),
            "llama-1b": tf.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                                       tie_word_embeddings=True, max_position_embeddings=256),
            "llama-8b": tf.LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                                       num_attention_heads=4, num_key_value_heads=2, vocab_size=600,
                                       tie_word_embeddings=False, max_position_embeddings=256),
        }
    return {
        # GPT-2 small (124M): tied wte/lm_head, Conv1D weights.
        "gpt2": tf.GPT2Config(),
        # Llama-3.2-1B's shape: tied embeddings.
        "llama-1b": tf.LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                   tie_word_embeddings=True, rope_theta=500000.0,
                                   max_position_embeddings=8192),
        # Llama-3-8B's shape.
        "llama-8b": tf.LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                   tie_word_embeddings=False, rope_theta=500000.0,
                                   max_position_embeddings=8192),
    }


class Timer:
    def __init__(self, dev):
        self.cuda = dev.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn):
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t0, out


def log(*a):
    print(*a, flush=True)


def make_checkpoint(name, cfg, root, cli, dev, threads):
    import transformers as tf
    src = os.path.join(root, name)
    dst = src + ".df11"
    for p in (src, dst):
        shutil.rmtree(p, ignore_errors=True)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(dev):
        model = tf.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(src, max_shard_size="2GB")
    del model
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    t1 = time.perf_counter()
    r = subprocess.run([cli, "compress", src, "-o", dst, "-T", str(threads), "-q", "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"df11 compress failed: {r.stderr.strip()}")
    t2 = time.perf_counter()
    sizes = {}
    for d in (src, dst):
        sizes[d] = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    log(f"[{name}] {n_params / 1e9:.3f}B params; built+saved in {t1 - t0:.1f}s, compressed in "
        f"{t2 - t1:.1f}s: {sizes[dst] / sizes[src]:.4f} of {sizes[src] / 1e9:.2f} GB")
    return src, dst, {"params": n_params, "bf16_dir_bytes": sizes[src], "df11_dir_bytes": sizes[dst],
                      "compress_s": t2 - t1}


def no_eos(model):
    # Random weights emit EOS at random: generate exactly N tokens, with no
    # logits processor in the way (logits compared are the raw ones).
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0


def generate(model, ids, n, logits=False):
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    if logits:
        kw.update(output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        return model.generate(ids, **kw)


def tokens_per_s(timer, model, prompts, batches, n, reps, warm_tokens=None):
    """{batch: tokens/s} over `reps` timed generations of n tokens (median
    time), after one untimed warm-up generation of warm_tokens (default n:
    every sequence length the timed run meets has been seen once)."""
    out = {}
    for b in batches:
        ids = prompts[:b]
        generate(model, ids, warm_tokens or n)
        times = [timer(lambda: generate(model, ids, n))[0] for _ in range(reps)]
        t = statistics.median(times)
        out[b] = {"tokens_per_s": b * n / t, "s_per_step": t / n, "new_tokens": n, "reps": reps,
                  "times_s": times}
        log(f"    batch {b:3d}: {b * n / t:9.1f} tokens/s ({1000 * t / n:.2f} ms/step, {n} tokens, "
            f"median of {reps}: {', '.join(f'{x:.3f}' for x in times)} s)")
    return out


def mem(dev):
    if dev.type != "cuda":
        return {}
    return {"allocated": torch.cuda.memory_allocated(), "peak": torch.cuda.max_memory_allocated()}


def reset_mem(dev):
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def unit_decode_times(model, prompts, dev, reps=20):
    """Median time of each unit's plan launch, and the units one forward uses."""
    launcher = model.df11.launcher
    used = []
    original = launcher.launch

    def recording(unit):
        used.append(unit.key)
        original(unit)

    launcher.launch = recording
    try:
        with torch.no_grad():
            model(prompts[:1, :4])
    finally:
        del launcher.launch  # the class's method again
    times = {}
    if dev.type == "cuda" and hasattr(launcher, "plans"):
        stream = torch.cuda.current_stream()
        for key in set(used):
            plan = launcher.plans[key] if key in launcher.plans else launcher.plans[(key, 0)]
            plan.launch(stream)
            samples = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record(stream)
                plan.launch(stream)
                b.record(stream)
                b.synchronize()
                samples.append(a.elapsed_time(b) / 1000)
            times[key] = statistics.median(samples)
    return used, times  # the caller's model.df11_check() checks every plan


def bench_model(name, cfg, args, dev, timer):
    res = {"model": name, "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"}
    src, packed, res["checkpoint"] = make_checkpoint(name, cfg, args.shm, args.cli, dev, args.threads)
    from transformers import AutoModelForCausalLM
    g = torch.Generator().manual_seed(1)
    batches = [int(b) for b in args.batches.split(",")]
    prompts = torch.randint(3, cfg.vocab_size, (max(batches), args.prompt), generator=g).to(dev)

    # 1. BF16 on the GPU.
    reset_mem(dev)
    t, ref = timer(lambda: AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16, device_map=str(dev)))
    ref.eval()
    no_eos(ref)
    res["bf16_load_s"] = t
    res["bf16_mem_weights"] = mem(dev).get("allocated")
    log(f"[{name}] BF16 loaded in {t:.1f}s, {(res['bf16_mem_weights'] or 0) / GIB:.3f} GiB on the GPU")
    ids1 = prompts[:1]
    ref_out = generate(ref, ids1, args.tokens, logits=True)
    ref_seq = ref_out.sequences
    ref_logits = [x.clone() for x in ref_out.logits]
    del ref_out
    log("  BF16 tokens/s:")
    res["bf16"] = tokens_per_s(timer, ref, prompts, batches, args.tokens, args.reps)
    res["bf16_mem_peak"] = mem(dev).get("peak")
    del ref
    reset_mem(dev)

    # 2. df11, compressed weights on the GPU.
    t, model = timer(lambda: df11.torch.load_model(packed, device=str(dev)))
    no_eos(model)
    st = model.df11
    res["df11_load_s"] = t
    res["df11_mem_after_load"] = mem(dev).get("allocated")
    res["df11_image_bytes"] = st.image_bytes
    res["df11_scratch_bytes"] = st.scratch_bytes
    res["df11_resident_bytes"] = st.resident_bytes
    res["df11_units"] = len(st.units)
    log(f"[{name}] df11 loaded in {t:.1f}s: images {st.image_bytes / GIB:.3f} GiB, scratch "
        f"{st.scratch_bytes / GIB:.3f} GiB, resident {st.resident_bytes / GIB:.4f} GiB, units {len(st.units)}")
    out = generate(model, ids1, args.tokens, logits=True)
    same_tokens = torch.equal(out.sequences, ref_seq)
    steps_equal = sum(bool(torch.equal(a, b)) for a, b in zip(out.logits, ref_logits))
    res["identical"] = {"tokens": args.tokens, "sequences_equal": same_tokens,
                        "steps_with_equal_logits": steps_equal, "steps": len(ref_logits)}
    log(f"  bit-identical: sequences {same_tokens}, logits torch.equal at {steps_equal}/{len(ref_logits)} steps")
    del out, ref_logits
    log("  df11 tokens/s:")
    res["df11"] = tokens_per_s(timer, model, prompts, batches, args.tokens, args.reps)
    res["df11_mem_peak"] = mem(dev).get("peak")
    used, times = unit_decode_times(model, prompts, dev)
    model.df11_check()
    decode_sum = sum(times.get(k, 0.0) for k in used)
    res["decode"] = {"launches_per_forward": len(used), "sum_s": decode_sum,
                     "per_unit_s": {k: times.get(k) for k in sorted(set(used))}}
    if 1 in res["bf16"] and dev.type == "cuda":
        extra = res["df11"][1]["s_per_step"] - res["bf16"][1]["s_per_step"]
        res["decode"]["extra_s_per_token_b1"] = extra
        res["decode"]["extra_over_decode_sum"] = extra / decode_sum if decode_sum else None
        log(f"  decode per forward {1000 * decode_sum:.3f} ms ({len(used)} launches); extra per token at "
            f"batch 1 {1000 * extra:.3f} ms = {extra / decode_sum:.2f}x the decode sum")
    model.df11.close()
    del model
    reset_mem(dev)

    if dev.type != "cuda":
        return res
    # The cap for (3) and (4): what df11 needed at its peak, plus 5%.
    cap = int(res["df11_mem_peak"] * 1.05)
    res["cap_bytes"] = cap
    log(f"[{name}] GPU memory cap for offloading: {cap / GIB:.2f} GiB (BF16 weights alone: "
        f"{res['bf16_mem_weights'] / GIB:.2f} GiB)")

    # 3. df11 with offload.
    if not args.no_offload:
        t, model = timer(lambda: df11.torch.load_model(packed, device=str(dev), offload=True))
        no_eos(model)
        res["df11_offload_load_s"] = t
        res["df11_offload_mem_after_load"] = mem(dev).get("allocated")
        out = generate(model, ids1, min(args.tokens, 32), logits=True)
        res["df11_offload_identical_first_steps"] = bool(torch.equal(out.sequences, ref_seq[:, :out.sequences.shape[1]]))
        log(f"  df11 offload: loaded in {t:.1f}s, {res['df11_offload_mem_after_load'] / GIB:.3f} GiB after load; "
            f"first {out.sequences.shape[1] - args.prompt} tokens equal to BF16: "
            f"{res['df11_offload_identical_first_steps']}")
        del out
        res["df11_offload"] = tokens_per_s(timer, model, prompts, batches, args.offload_tokens, 1, 2)
        res["df11_offload_mem_peak"] = mem(dev).get("peak")
        model.df11_check()
        model.df11.close()
        del model
        reset_mem(dev)

    # 4. BF16 with accelerate's CPU offload under the cap, when BF16 does not
    # fit under it (for small models activations dominate, and it does).
    res["bf16_fits_under_cap"] = res["bf16_mem_peak"] <= cap
    if res["bf16_fits_under_cap"]:
        log(f"  accelerate offload: skipped, BF16's peak {res['bf16_mem_peak'] / GIB:.2f} GiB fits under the cap")
    elif not args.no_accelerate:
        t, acc = timer(lambda: AutoModelForCausalLM.from_pretrained(
            src, dtype=torch.bfloat16, device_map="auto", max_memory={0: cap, "cpu": 200 * GIB}))
        acc.eval()
        no_eos(acc)
        placed = getattr(acc, "hf_device_map", {})
        on_cpu = sum(1 for v in placed.values() if v in ("cpu", "disk"))
        res["accelerate_modules_on_cpu"] = on_cpu
        res["accelerate_mem_after_load"] = mem(dev).get("allocated")
        log(f"  accelerate offload: loaded in {t:.1f}s, {on_cpu} of {len(placed)} modules on the CPU, "
            f"{res['accelerate_mem_after_load'] / GIB:.2f} GiB on the GPU")
        res["accelerate"] = tokens_per_s(timer, acc, prompts, batches, args.accelerate_tokens, 1, 2)
        res["accelerate_mem_peak"] = mem(dev).get("peak")
        del acc
        reset_mem(dev)
    return res


def table(results):
    lines = ["model     batch  bf16 tok/s  df11 tok/s  df11/bf16  df11-offl tok/s  accel-offl tok/s  df11/accel"]
    for r in results:
        for b, v in r.get("bf16", {}).items():
            d = r.get("df11", {}).get(b, {}).get("tokens_per_s", float("nan"))
            o = r.get("df11_offload", {}).get(b, {}).get("tokens_per_s", float("nan"))
            a = r.get("accelerate", {}).get(b, {}).get("tokens_per_s", float("nan"))
            lines.append(f"{r['model']:9s} {b:5d} {v['tokens_per_s']:11.1f} {d:11.1f} {d / v['tokens_per_s']:10.3f} "
                         f"{o:16.1f} {a:17.2f} {d / a if a == a and a else float('nan'):11.1f}")
    lines.append("model     identical(seq, logits steps)  weights GiB bf16 / df11(images+resident) = ratio  "
                 "scratch GiB  decode ms/fwd  extra ms/tok b1  extra/decode")
    for r in results:
        idn = r.get("identical", {})
        bf = r.get("bf16_mem_weights") or 0
        w = (r.get("df11_image_bytes", 0) + r.get("df11_resident_bytes", 0))
        dec = r.get("decode", {})
        lines.append(
            f"{r['model']:9s} {str(idn.get('sequences_equal')):5s} {idn.get('steps_with_equal_logits')}/"
            f"{idn.get('steps')}            {bf / GIB:8.3f} / {w / GIB:8.3f} = {w / bf if bf else float('nan'):.3f}"
            f"   {r.get('df11_scratch_bytes', 0) / GIB:8.3f}   {1000 * dec.get('sum_s', 0):10.3f}"
            f"   {1000 * (dec.get('extra_s_per_token_b1') or float('nan')):12.3f}"
            f"   {dec.get('extra_over_decode_sum') or float('nan'):8.2f}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=os.environ.get("DF11_CLI", "df11"), help="the df11 command")
    ap.add_argument("--models", default="gpt2,llama-1b,llama-8b")
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--tokens", type=int, default=128, help="new tokens per generation (bit-identity and speed)")
    ap.add_argument("--prompt", type=int, default=32, help="prompt length")
    ap.add_argument("--reps", type=int, default=2, help="timed generations per batch (median)")
    ap.add_argument("--offload-tokens", type=int, default=32, help="new tokens for df11 offload runs")
    ap.add_argument("--accelerate-tokens", type=int, default=8, help="new tokens for accelerate offload runs")
    ap.add_argument("--no-offload", action="store_true")
    ap.add_argument("--no-accelerate", action="store_true")
    ap.add_argument("--threads", type=int, default=16, help="df11 compress -T")
    ap.add_argument("--shm", default="/dev/shm/df11-bench")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--smoke", action="store_true", help="tiny models, few tokens: checks the script")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.smoke:
        args.tokens, args.offload_tokens, args.accelerate_tokens = 8, 4, 2
        args.batches = "1,4"
    timer = Timer(dev)
    os.makedirs(args.shm, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    cfgs = configs(args.smoke)
    log(f"device {torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu'}; torch {torch.__version__}; "
        f"df11 {df11.__version__} ({df11._lib.library_path()}); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    log("command: " + " ".join(sys.argv))
    results = []
    for name in args.models.split(","):
        try:
            r = bench_model(name, cfgs[name], args, dev, timer)
        except Exception as e:  # one model's failure must not lose the others' numbers
            import traceback
            traceback.print_exc()
            r = {"model": name, "error": f"{type(e).__name__}: {e}"}
        finally:
            shutil.rmtree(os.path.join(args.shm, name), ignore_errors=True)
            shutil.rmtree(os.path.join(args.shm, name + ".df11"), ignore_errors=True)
            reset_mem(dev)
        results.append(r)
        with open(os.path.join(args.out, f"bench_{name}.json"), "w") as f:
            json.dump(r, f, indent=1, default=str)
    log("\n" + table([r for r in results if "error" not in r]))
    for r in results:
        if "error" in r:
            log(f"{r['model']}: FAILED {r['error']}")
    bad = [r for r in results if "error" in r or not r.get("identical", {}).get("sequences_equal")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
