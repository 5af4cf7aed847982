# Sourced by the CPU benchmarks. make_bench_model MAKE_BENCH DIR SHARDS:
# DIR/model-0000K-of-0000N.safetensors, Llama-3-8B-shaped (shard 0:
# embed_tokens + layers 0-1, middle shards two layers each, the last two
# layers + lm_head; each 1.4-1.9 GB), plus a config.json. Shards already
# there are kept.
make_bench_model() {
  local mk=$1 dir=$2 shards=$3 k f
  mkdir -p "$dir"
  for ((k = 0; k < shards; k++)); do
    f="$dir/model-$(printf %05d $((k + 1)))-of-$(printf %05d "$shards").safetensors"
    [ -f "$f" ] || "$mk" "$f" --kind llama3-8b --first-layer $((2 * k)) --layers 2 \
      --embed $((k == 0 ? 1 : 0)) --lm-head $((k == shards - 1 ? 1 : 0))
  done
  echo '{"model_type": "llama"}' > "$dir/config.json"
}
