"""Fixtures: the df11 CLI, generated safetensors inputs and their .df11 forms.

The library is found as the package finds it ($DF11_LIBRARY, else the copy
bundled by pip). The CLI (to make .df11 inputs) is $DF11_CLI, else the
build trees' df11, else `df11` on PATH. ctest sets both.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
if "df11" not in sys.modules:
    # Run from the source tree when the package is not installed.
    try:
        import df11  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(REPO, "python"))

import st_io  # noqa: E402

SHARED_TESTDATA = os.path.join(os.path.dirname(REPO), "shared", "testdata")


def _find_cli():
    env = os.environ.get("DF11_CLI")
    if env:
        return env
    for cand in ("build/df11", ".gpu-build/df11", ".gpu-build/bin/df11"):
        p = os.path.join(REPO, cand)
        if os.access(p, os.X_OK):
            return p
    return shutil.which("df11")


def _library_or_skip():
    import df11  # noqa: F811
    from df11 import _lib
    path = _lib.library_path()
    if not os.environ.get("DF11_LIBRARY") and not os.path.exists(path):
        pytest.skip(f"skipped: libdf11.so not bundled at {path} and DF11_LIBRARY unset "
                    f"(pip install ./python, or run through ctest)")
    _lib.lib()  # an explicitly named library that fails to load is an error, not a skip
    return df11


@pytest.fixture(scope="session")
def df11mod():
    return _library_or_skip()


@pytest.fixture(scope="session")
def cli():
    path = _find_cli()
    if not path:
        pytest.skip("skipped: no df11 CLI to make .df11 inputs (set DF11_CLI or build ./build/df11)")
    return path


def compress(cli, src, dst):
    r = subprocess.run([cli, "compress", src, "-o", dst, "-q", "-f"], capture_output=True, text=True)
    assert r.returncode == 0, f"df11 compress {src} failed: {r.stderr}"
    return dst


def sample_tensors(seed=1):
    """Mixed dtypes and shapes, BF16 at a trained model's spread."""
    rng = np.random.default_rng(seed)
    return [
        ("model.layers.0.mlp.up_proj.weight", "BF16", (96, 64), st_io.bf16_bits(rng, (96, 64)).tobytes()),
        ("model.layers.0.input_layernorm.weight", "BF16", (64,), st_io.bf16_bits(rng, (64,), 1.0).tobytes()),
        ("model.layers.1.self_attn.q_proj.weight", "BF16", (64, 64), st_io.bf16_bits(rng, (64, 64)).tobytes()),
        ("model.embed_tokens.weight", "BF16", (300, 64), st_io.bf16_bits(rng, (300, 64)).tobytes()),
        # Large enough for thread blocks of many weights (more GPU shared memory than the small ones).
        ("model.layers.2.mlp.down_proj.weight", "BF16", (1024, 512), st_io.bf16_bits(rng, (1024, 512)).tobytes()),
        ("scalar.bf16", "BF16", (), st_io.bf16_bits(rng, (1,)).tobytes()),
        ("empty.bf16", "BF16", (0, 8), b""),
        ("f32.bias", "F32", (33,), rng.standard_normal(33).astype(np.float32).tobytes()),
        ("f16.x", "F16", (5, 7), rng.standard_normal((5, 7)).astype(np.float16).tobytes()),
        ("i64.ids", "I64", (17,), rng.integers(-1000, 1000, 17).astype(np.int64).tobytes()),
        ("u8.mask", "U8", (3, 3, 3), rng.integers(0, 255, 27).astype(np.uint8).tobytes()),
    ]


@pytest.fixture(scope="session")
def sample_file(tmp_path_factory, cli):
    """(original .safetensors, its .df11)."""
    d = tmp_path_factory.mktemp("file")
    src = str(d / "sample.safetensors")
    st_io.write(src, sample_tensors(), metadata={"format": "pt"})
    return src, compress(cli, src, str(d / "sample.df11"))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory, cli):
    """(original model directory of two shards + index + config, its df11 directory)."""
    d = tmp_path_factory.mktemp("dir")
    src = d / "model"
    src.mkdir()
    tensors = sample_tensors(seed=2)
    shards = {"model-00001-of-00002.safetensors": tensors[:4], "model-00002-of-00002.safetensors": tensors[4:]}
    weight_map = {}
    for shard, ts in shards.items():
        st_io.write(str(src / shard), ts, metadata={"format": "pt"})
        weight_map.update({t[0]: shard for t in ts})
    (src / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (src / "config.json").write_text(json.dumps({"model_type": "none"}))
    return str(src), compress(cli, str(src), str(d / "model.df11"))


@pytest.fixture(scope="module")
def gpu(df11mod):
    """The binding, where libdf11 is built with CUDA and sees a GPU (GPU tests)."""
    if df11mod.cuda_device_count() == 0:
        pytest.skip("skipped: this libdf11 is built without CUDA or sees no GPU")
    return df11mod
