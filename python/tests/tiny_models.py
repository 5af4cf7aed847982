"""Tiny transformers models with random BF16 weights (std 0.02), saved as
sharded safetensors and compressed with the df11 CLI, for the torch tests."""
import os

from conftest import compress


def tiny_config(kind):
    import transformers
    if kind == "gpt2":  # tied wte/lm_head, Conv1D weights stored [in, out]
        return transformers.GPT2Config(n_embd=64, n_layer=3, n_head=4, vocab_size=512, n_positions=128)
    if kind == "llama":
        return transformers.LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                                        max_position_embeddings=128, tie_word_embeddings=False)
    if kind == "llama-tied":
        return transformers.LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                                        max_position_embeddings=128, tie_word_embeddings=True)
    raise ValueError(kind)


def make_model_dir(cli, root, kind, seed=0):
    """(BF16 model directory, its df11 directory)."""
    import torch
    import transformers
    torch.manual_seed(seed)
    cfg = tiny_config(kind)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    with torch.no_grad():  # norms away from 1.0 so that they are not trivially constant
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(1.0 + 0.1 * torch.randn_like(p.float()))
    src = os.path.join(root, kind)
    model.save_pretrained(src, max_shard_size="100KB")  # several shards and an index
    return src, compress(cli, src, src + ".df11")


KINDS = ["gpt2", "llama", "llama-tied"]


def make_model_dirs(cli, root):
    """{kind: (source dir, df11 dir)} for every kind in KINDS."""
    return {k: make_model_dir(cli, root, k) for k in KINDS}


def greedy(model, ids, steps):
    """Greedy generation of exactly `steps` tokens: (sequences, per-step logits)."""
    out = model.generate(ids, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                         output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    return out.sequences, out.logits


def forwards_in_threads(call, inputs, expected, rounds, sync=None):
    """Runs call(inputs[k]) `rounds` times on thread k, for every k, all at
    once; raises AssertionError naming the threads whose result differed from
    expected[k], or the first exception a thread raised. `sync()` runs after
    each call (a GPU's stream), before the comparison."""
    import threading
    import torch
    bad, errors = [], []

    def work(k):
        try:
            for _ in range(rounds):
                with torch.no_grad():
                    got = call(inputs[k])
                    if sync is not None:
                        sync()
                    if not torch.equal(got, expected[k]):
                        bad.append(k)
        except Exception as e:  # noqa: BLE001 - raised below, in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert not bad, f"wrong logits in threads {sorted(set(bad))}"
