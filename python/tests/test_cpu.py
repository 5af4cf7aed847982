"""CPU path with numpy only: open, names, info, read (bytes identical to the
original), errors with names, the uint16 fallback without ml_dtypes; paths,
devices and integer arguments checked before they reach C; errors that
pickle; objects owning a C handle that refuse to be copied; library loading."""
import copy
import os
import pickle
import shutil
import sys

import numpy as np
import pytest

import st_io
from conftest import SHARED_TESTDATA, compress


def expected_dtype(st_dtype):
    if st_dtype == "BF16":
        try:
            import ml_dtypes
            return np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            return np.dtype(np.uint16)
    return {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U8": np.uint8}[st_dtype]


def check_all_tensors(f, original):
    assert sorted(f.names()) == sorted(original)
    for name, (dtype, shape, raw) in original.items():
        arr = f.read(name)
        assert isinstance(arr, np.ndarray)
        assert arr.shape == shape, name
        assert arr.dtype == expected_dtype(dtype), name
        assert arr.tobytes() == raw, f"{name}: decoded bytes differ from the original"


def test_version_matches_library(df11mod):
    assert df11mod.__version__ == df11mod.library_version()


def test_file_read_every_tensor_identical(df11mod, sample_file):
    src, packed = sample_file
    with df11mod.open(packed) as f:
        check_all_tensors(f, st_io.read(src))


def test_names_in_data_order(df11mod, sample_file):
    src, packed = sample_file
    with df11mod.open(packed) as f:
        assert f.names() == list(st_io.read(src))  # the reader returns data-offset order


def test_info_fields(df11mod, sample_file):
    src, packed = sample_file
    original = st_io.read(src)
    with df11mod.open(packed) as f:
        assert len(f) == len(original)
        for name, (dtype, shape, raw) in original.items():
            info = f.info(name)
            assert info["name"] == name
            assert info["dtype"] == dtype
            assert info["shape"] == shape
            assert info["original_bytes"] == len(raw)
            assert info["encoding"] in ("bf16-huffman", "zstd", "raw")
            assert info["shard"] == ""
        big = f.info("model.embed_tokens.weight")
        assert big["encoding"] == "bf16-huffman"
        # Exponents of N(0, 0.02) weights carry ~2.6 bits: well under 16 bits per weight.
        assert big["stored_bytes"] < 0.8 * big["original_bytes"]
        assert f.info("f32.bias")["encoding"] != "bf16-huffman"


def test_uint16_fallback_without_ml_dtypes(df11mod, sample_file, monkeypatch):
    src, packed = sample_file
    original = st_io.read(src)
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # `import ml_dtypes` now raises ImportError
    with df11mod.open(packed) as f:
        arr = f.read("model.layers.0.mlp.up_proj.weight")
        assert arr.dtype == np.uint16
        assert arr.tobytes() == original["model.layers.0.mlp.up_proj.weight"][2]
        assert f.read("f32.bias").dtype == np.float32


def test_bfloat16_with_ml_dtypes(df11mod, sample_file):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="skipped: ml_dtypes not installed")
    src, packed = sample_file
    with df11mod.open(packed) as f:
        arr = f.read("model.layers.0.mlp.up_proj.weight")
        assert arr.dtype == np.dtype(ml_dtypes.bfloat16)
        bits = np.frombuffer(st_io.read(src)["model.layers.0.mlp.up_proj.weight"][2], np.uint16)
        # The values are the BF16 numbers themselves: upper half of a float32.
        expect = (bits.astype(np.uint32) << 16).view(np.float32).reshape(arr.shape)
        np.testing.assert_array_equal(arr.astype(np.float32), expect)


def test_threads_do_not_change_result(df11mod, sample_file):
    _, packed = sample_file
    with df11mod.open(packed) as f:
        for name in f.names():
            assert f.read(name, threads=1).tobytes() == f.read(name, threads=2).tobytes()


def test_directory_read_every_tensor_identical(df11mod, sample_dir):
    src, packed = sample_dir
    original = st_io.read_dir(src)
    with df11mod.open(packed) as f:
        check_all_tensors(f, original)
        assert f.info("model.embed_tokens.weight")["shard"] == "model-00001-of-00002.df11"
        assert f.info("i64.ids")["shard"] == "model-00002-of-00002.df11"


def test_image_size_and_pack_on_cpu(df11mod, sample_file):
    _, packed = sample_file
    with df11mod.open(packed) as f:
        i = f.info("model.embed_tokens.weight")["index"]
        j = f.info("model.layers.0.mlp.up_proj.weight")["index"]
        try:
            one = f.image_size([i])
        except df11mod.InputError as e:
            if e.name != "CudaUnavailable":
                raise
            pytest.skip("skipped: this libdf11 is built without CUDA, which GPU images need")
        both = f.image_size([i, j])
        assert 0 < one < both
        buf = np.zeros(both, np.uint8)
        f.pack_into([i, j], buf.ctypes.data, buf.nbytes)
        assert buf.any()
        with pytest.raises(df11mod.UsageError) as e:
            f.image_size([f.info("f32.bias")["index"]])  # only BF16-Huffman tensors have images
        assert e.value.name == "Usage"


# ---- errors ------------------------------------------------------------------
def test_error_missing_path(df11mod, tmp_path):
    missing = str(tmp_path / "nope.df11")
    with pytest.raises(df11mod.InputError) as e:
        df11mod.open(missing)
    assert e.value.name == "Io"
    assert "nope.df11" in str(e.value)
    assert isinstance(e.value, df11mod.Df11Error)


def test_error_not_a_df11_file(df11mod, tmp_path):
    bad = tmp_path / "junk.df11"
    bad.write_bytes(b"this is not a df11 container at all" * 10)
    with pytest.raises(df11mod.Df11Error) as e:
        df11mod.open(str(bad))
    assert e.value.name == "Df11BadMagic"
    assert "junk.df11" in e.value.message
    assert "(Df11BadMagic)" in str(e.value)


def test_error_corrupt_payload(df11mod, sample_file, tmp_path):
    """A flipped byte inside a BF16 tensor's sign/mantissa plane passes the
    structural checks at open, and the tensor checksum catches it on read."""
    src, packed = sample_file
    data = bytearray(open(packed, "rb").read())
    with df11mod.open(packed) as f:
        names = f.names()
    w = np.frombuffer(st_io.read(src)["model.embed_tokens.weight"][2], np.uint16)
    # The sign-mantissa bytes are stored verbatim (docs/FORMAT.md): find them in the container.
    sm = (((w[:32] >> 8) & 0x80) | (w[:32] & 0x7F)).astype(np.uint8).tobytes()
    pos = data.find(sm)
    assert pos > 0, "sign/mantissa plane not found verbatim"
    data[pos + 5] ^= 0x01
    bad = tmp_path / "corrupt.df11"
    bad.write_bytes(bytes(data))
    with df11mod.open(str(bad)) as f:
        assert f.names() == names
        with pytest.raises(df11mod.CorruptDataError) as e:
            f.read("model.embed_tokens.weight")
        assert e.value.name == "Df11TensorChecksum"
        assert "model.embed_tokens.weight" in e.value.message
        f.read("f32.bias")  # other tensors still read


def test_error_unknown_tensor_and_closed_file(df11mod, sample_file):
    _, packed = sample_file
    f = df11mod.open(packed)
    with pytest.raises(df11mod.UsageError) as e:
        f.read("no.such.tensor")
    assert e.value.name == "Usage" and "no.such.tensor" in e.value.message
    assert e.value.message.startswith(f"{packed}: no tensor named 'no.such.tensor'")
    # The library's own messages have the same form, "PATH: problem", with no
    # "df11:" in front (the exception's class says whose it is).
    with pytest.raises(df11mod.InputError) as lib_error:
        df11mod.open(f"{packed}.missing")
    assert lib_error.value.message.startswith(f"{packed}.missing: "), lib_error.value.message
    with pytest.raises(df11mod.UsageError):
        f.info("no.such.tensor")
    f.close()
    f.close()  # twice is fine
    with pytest.raises(df11mod.UsageError) as e:
        f.read("f32.bias")
    assert "closed" in e.value.message


def test_context_manager_closes(df11mod, sample_file):
    _, packed = sample_file
    with df11mod.open(packed) as f:
        assert len(f) > 0 and "f32.bias" in f
    # Every question after close is an error, the listing ones too.
    for ask in (f.names, lambda: len(f), lambda: "f32.bias" in f, lambda: f.info("f32.bias"),
                lambda: f.read("f32.bias"), lambda: f.read_numpy(0), f.__enter__):  # `with f:` again
        with pytest.raises(df11mod.UsageError) as e:
            ask()
        assert e.value.message == f"{packed}: file is closed"
    assert f  # truthiness is not a question


def test_cuda_read_without_torch_or_gpu_is_an_error(df11mod, sample_file):
    _, packed = sample_file
    with df11mod.open(packed) as f:
        with pytest.raises(df11mod.UsageError):
            f.read("f32.bias", device="npu")


def test_real_gpt2_weights(df11mod, cli, tmp_path):
    src = os.path.join(SHARED_TESTDATA, "gpt2-small-h0-5.safetensors")
    if not os.path.exists(src):
        pytest.skip(f"skipped: {src} absent (shared test data)")
    packed = compress(cli, src, str(tmp_path / "gpt2.df11"))
    with df11mod.open(packed) as f:
        check_all_tensors(f, st_io.read(src))


# ---- objects owning a C handle: no copies ---------------------------------------
def refusal(fn, obj):
    """The TypeError's message when fn(obj) refuses; fails the test otherwise.
    A File copy that was made shares the handle: it is disarmed so that the
    double close does not crash the test run."""
    try:
        dup = fn(obj)
    except TypeError as e:
        return str(e)
    if getattr(dup, "_handle", None) is not None:
        dup._handle = None
    pytest.fail(f"{fn.__module__}.{fn.__name__} of {type(obj).__name__} did not raise TypeError")


@pytest.mark.parametrize("fn", [copy.copy, copy.deepcopy, pickle.dumps], ids=["copy", "deepcopy", "pickle"])
def test_file_refuses_copy_and_pickle(df11mod, sample_file, fn):
    src, packed = sample_file
    with df11mod.open(packed) as f:
        message = refusal(fn, f)
        assert "cannot pickle or copy" in message and "handle" in message
        assert f.read("f32.bias").tobytes() == st_io.read(src)["f32.bias"][2]  # still open, still usable


@pytest.mark.parametrize("fn", [copy.copy, copy.deepcopy, pickle.dumps], ids=["copy", "deepcopy", "pickle"])
def test_gpu_objects_refuse_copy_and_pickle(df11mod, fn):
    # Built without __init__ (no torch, no GPU needed): the refusal is the class's.
    from df11._gpu import GpuContext, Plan
    for cls in (Plan, GpuContext):
        assert "handle" in refusal(fn, cls.__new__(cls))


# ---- errors pickle (multiprocessing) and copy -----------------------------------------
COPIES = [copy.copy, copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))]


def same_error(got, e):
    assert type(got) is type(e)
    assert (got.message, got.name, got.code) == (e.message, e.name, e.code)
    assert str(got) == str(e) and got.args == e.args


@pytest.mark.parametrize("fn", COPIES, ids=["copy", "deepcopy", "pickle"])
def test_errors_pickle_and_copy(df11mod, tmp_path, fn):
    errors = [cls("f.df11: something broke (Rule)", "Rule", 7)
              for cls in (df11mod.Df11Error, df11mod.CorruptDataError, df11mod.UsageError, df11mod.InputError)]
    errors.append(df11mod.UsageError("df11: raised by Python", "Usage"))  # code None
    try:
        df11mod.open(str(tmp_path / "nope.df11"))
    except df11mod.Df11Error as e:
        errors.append(e)  # one the library raised
    for e in errors:
        e.note = "kept"  # attributes set after construction travel too
        got = fn(e)
        same_error(got, e)
        assert got.note == "kept"


# ---- status -> class ------------------------------------------------------------------
def status_code(name):
    from df11 import _lib
    L = _lib.lib()
    for code in range(1, 256):
        if L.df11_status_name(code).decode() == name:
            return code
    pytest.fail(f"the library has no status {name}")


def test_out_of_memory_and_internal_have_their_classes(df11mod):
    """Their exit code is 3, as for bad input: the class comes from the name."""
    from df11 import _lib
    for name, cls, builtin in (("OutOfMemory", df11mod.OutOfMemoryError, MemoryError),
                               ("Internal", df11mod.InternalError, RuntimeError)):
        code = status_code(name)
        with pytest.raises(cls) as e:
            _lib.raise_status(code)
        assert isinstance(e.value, df11mod.Df11Error) and isinstance(e.value, builtin)
        assert not isinstance(e.value, df11mod.InputError)
        assert (e.value.name, e.value.code) == (name, code)
        for fn in COPIES:
            same_error(fn(e.value), e.value)
    with pytest.raises(df11mod.InputError):  # the others still by exit code
        _lib.raise_status(status_code("Io"))


# ---- devices ---------------------------------------------------------------------------
def test_cpu_devices(df11mod, sample_file):
    _, packed = sample_file
    with df11mod.open(packed) as f:
        want = f.read("f32.bias").tobytes()
        for device in ("cpu", "cpu:0", "cpu:3"):
            got = f.read("f32.bias", device=device)
            assert isinstance(got, np.ndarray) and got.tobytes() == want, device


def test_cpu_torch_device(df11mod, sample_file):
    torch = pytest.importorskip("torch", reason="skipped: torch not installed")
    _, packed = sample_file
    with df11mod.open(packed) as f:
        for device in (torch.device("cpu"), torch.device("cpu", 0)):
            assert isinstance(f.read("f32.bias", device=device), np.ndarray)


def test_bad_devices_are_usage_errors(df11mod, sample_file, monkeypatch):
    _, packed = sample_file
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with df11mod.open(packed) as f:
        for device in ("cuda", "cuda:0", 0):
            with pytest.raises(df11mod.UsageError) as e:
                f.read("f32.bias", device=device)
            assert "needs torch" in e.value.message, device
        with pytest.raises(df11mod.UsageError) as e:  # a numpy integer is a CUDA ordinal, as an int is
            f.read("f32.bias", device=np.int64(0))
        assert "needs torch" in e.value.message
        for device in ("tpu", "cpu:x", "cuda:-1", " cpu", "", b"cpu", -1, 2**40, True, np.bool_(True), 1.5,
                       "cuda:01", "cpu:00"):  # N is a plain decimal index, as for the CLI
            with pytest.raises(df11mod.UsageError) as e:
                f.read("f32.bias", device=device)
            assert e.value.name == "Usage"
        with pytest.raises(df11mod.UsageError) as e:
            f.read("f32.bias", device="tpu")
        assert "'tpu'" in e.value.message


# ---- paths -------------------------------------------------------------------------------
def test_paths_str_bytes_pathlike_and_not_utf8(df11mod, sample_file, tmp_path):
    import pathlib
    _, packed = sample_file
    with df11mod.open(packed) as f:
        names = f.names()
    for path in (os.fsencode(packed), pathlib.Path(packed)):
        with df11mod.open(path) as f:
            assert f.names() == names
            assert f.path == packed
    # A file name that is not UTF-8 comes from os.listdir as a str with surrogates.
    odd = os.path.join(os.fsencode(str(tmp_path)), b"\xff-latin1-\xe9.df11")
    shutil.copyfile(packed, odd)
    for path in (os.fsdecode(odd), odd):
        with df11mod.open(path) as f:
            assert f.names() == names
    with pytest.raises(df11mod.InputError) as e:  # the library's message survives the odd name
        df11mod.open(os.fsdecode(odd) + ".missing")
    assert e.value.name == "Io"


def test_messages_show_control_characters_in_paths_escaped(df11mod, sample_file, tmp_path):
    """A path holding a newline, an ESC or a C1 control (U+009B) must not
    split or forge a message line: this layer's messages escape it as the
    library's own do (df11::one_line)."""
    _, packed = sample_file
    odd = str(tmp_path / "a\nb\x1b[31m\u009b.df11")
    shown = str(tmp_path) + "/a\\nb\\x1b[31m\\xc2\\x9b.df11"
    shutil.copyfile(packed, odd)
    with pytest.raises(df11mod.InputError) as e:  # the library's message
        df11mod.open(odd + ".missing")
    assert str(e.value).startswith(f"{shown}.missing: ")
    f = df11mod.open(odd)
    assert f.path == odd  # the path itself is kept as given
    raised = []
    for ask in (lambda: f.read("no such tensor"), lambda: f.read(f.names()[0], device="tpu")):
        with pytest.raises(df11mod.UsageError) as e:
            ask()
        raised.append(str(e.value))
    f.close()
    with pytest.raises(df11mod.UsageError) as e:
        f.names()
    raised.append(str(e.value))
    for message in raised:
        assert message.startswith(f"{shown}: "), message
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in message), message


def test_nul_in_path_is_a_value_error(df11mod, sample_file):
    _, packed = sample_file
    for path in (packed + "\0junk", os.fsencode(packed) + b"\0junk"):
        with pytest.raises(ValueError, match="null byte"):  # as builtins.open; c_char_p would open `packed`
            df11mod.open(path)


def test_nul_in_tensor_name_is_an_unknown_name(df11mod, sample_file):
    _, packed = sample_file
    with df11mod.open(packed) as f:
        name = "f32.bias\0junk"
        assert name not in f
        with pytest.raises(df11mod.UsageError) as e:
            f.read(name)
        assert e.value.name == "Usage" and "no tensor named" in e.value.message
        with pytest.raises(df11mod.UsageError):
            f.info(name)
        with pytest.raises(df11mod.UsageError):  # not a str: absent, as `in` says
            f.read(0)
        assert 0 not in f and [] not in f


# ---- integers bound for C ------------------------------------------------------------------
def test_integer_arguments_are_checked(df11mod, sample_file):
    """ctypes wraps integers silently: each of these reached C as another
    value (nbytes -1 as UINT64_MAX passes the size check; threads 2**40 as 0)."""
    _, packed = sample_file
    with df11mod.open(packed) as f:
        i = f.index("f32.bias")
        n = f.info("f32.bias")["original_bytes"]
        buf = np.empty(n, np.uint8)  # large enough: the call fails only if checked
        bad_calls = [
            lambda: f.decode_into(i, buf.ctypes.data, -1),
            lambda: f.decode_into(i, buf.ctypes.data, 2**64 + n),
            lambda: f.decode_into(i, -buf.ctypes.data, n),
            lambda: f.decode_into(i, buf.ctypes.data, n, threads=-1),
            lambda: f.decode_into(-1, buf.ctypes.data, n),
            lambda: f.decode_into(i, buf.ctypes.data, 1.0 * n),
            lambda: f.read("f32.bias", threads=-1),
            lambda: f.read("f32.bias", threads=2**40),
            lambda: f.read("f32.bias", threads=1.5),
            lambda: f.read("f32.bias", threads="2"),
            lambda: f.read_numpy(-1),
            lambda: f.read_numpy(len(f)),
            lambda: f.read_numpy(2**64 + i),
            lambda: f.read_numpy("0"),
            lambda: f.read_numpy(True),  # bool is an int to operator.index: it read tensor 1
            lambda: f.read("f32.bias", threads=True),
            lambda: f.decode_into(np.bool_(False), buf.ctypes.data, n),
            lambda: f.image_size([-1]),
            lambda: f.image_size([2**64]),
            lambda: f.pack_into([-1], buf.ctypes.data, n),
            lambda: f.pack_into([i], buf.ctypes.data, -1),
        ]
        for k, call in enumerate(bad_calls):
            with pytest.raises(df11mod.UsageError) as e:
                call()
            assert e.value.name == "Usage", k
        with pytest.raises(df11mod.UsageError) as e:
            f.read_numpy(-1)
        assert "tensor index -1 is out of range" in e.value.message
        # In range, numpy integers included, the same calls work.
        f.decode_into(np.int64(i), buf.ctypes.data, np.uint64(n), threads=np.int32(1))
        assert buf.tobytes() == f.read("f32.bias").tobytes() == f.read_numpy(np.int64(i)).tobytes()


# ---- loading the library ---------------------------------------------------------------------
@pytest.fixture
def unloaded(df11mod, monkeypatch):
    """The binding with no library loaded yet; the loaded one comes back after the test."""
    from df11 import _lib
    monkeypatch.setattr(_lib, "_lib", None)
    return _lib


def test_relative_library_path(unloaded, monkeypatch):
    """dlopen does not search the working directory: a relative
    $DF11_LIBRARY is made absolute."""
    real = unloaded.library_path()
    monkeypatch.chdir(os.path.dirname(real))
    monkeypatch.setenv("DF11_LIBRARY", os.path.basename(real))
    assert unloaded.lib().df11_c_api_version() == unloaded.C_API_VERSION
    assert unloaded.library_path() == real


def test_library_load_errors_are_import_errors(unloaded, monkeypatch, tmp_path):
    import _ctypes  # a shared library that lacks the df11 symbols
    junk = tmp_path / "libjunk.so"
    junk.write_bytes(b"not an ELF file")
    odd = tmp_path / "lib\njunk.so"  # a newline in the path: escaped, the message stays one line
    odd.write_bytes(b"not an ELF file")
    cases = {str(tmp_path / "missing.so"): "not found", str(junk): "not a usable libdf11",
             _ctypes.__file__: "df11_", str(odd): "not a usable libdf11"}
    for path, cause in cases.items():
        # $DF11_LIBRARY overrides: a bad one is an error, never a fall back to the bundled copy.
        monkeypatch.setenv("DF11_LIBRARY", path)
        with pytest.raises(ImportError) as e:
            unloaded.lib()
        shown = path.replace("\n", "\\n")
        assert shown in str(e.value) and cause in str(e.value) and "DF11_LIBRARY" in str(e.value)
        assert "\n" not in str(e.value)
        assert unloaded._lib is None


# ---- close() against reads in flight ---------------------------------------------------------
def test_close_waits_for_reads_in_progress(df11mod, cli, tmp_path):
    """ctypes releases the GIL while the library decodes: close() from another
    thread freed the handle under a running read (a crash, or a read through a
    closed descriptor). It now waits for reads in progress, and refuses those
    that start after it, with UsageError."""
    import threading
    rng = np.random.default_rng(3)
    src = str(tmp_path / "big.safetensors")
    st_io.write(src, [("w", "BF16", (2048, 1024), st_io.bf16_bits(rng, (2048, 1024)).tobytes())])
    packed = compress(cli, src, str(tmp_path / "big.df11"))
    want = df11mod.open(packed).read_numpy(0).tobytes()
    for _ in range(10):
        f = df11mod.open(packed)
        results, started = [], threading.Event()

        def reader():
            try:
                while True:
                    started.set()
                    results.append(f.read_numpy(0, threads=1).tobytes() == want)
            except df11mod.UsageError as e:
                results.append(e.message)

        t = threading.Thread(target=reader)
        t.start()
        started.wait()
        f.close()
        t.join(timeout=60)
        assert not t.is_alive()
        # Every read that ran returned the right bytes; the one after close() was refused.
        assert all(r is True for r in results[:-1]), results
        assert results[-1] == f"{packed}: file is closed", results[-1]
        assert "closed" in repr(f)


def test_read_of_a_file_without_tensors_and_of_a_shape_numpy_cannot_hold(df11mod, cli, tmp_path):
    empty = str(tmp_path / "empty.safetensors")
    st_io.write(empty, [])
    with df11mod.open(compress(cli, empty, str(tmp_path / "empty.df11"))) as f:
        with pytest.raises(df11mod.UsageError) as e:
            f.read_numpy(0)
        assert e.value.message.endswith("tensor index 0: the file has no tensors")
    huge = str(tmp_path / "huge.safetensors")
    st_io.write(huge, [("e", "BF16", (0, 2**64 - 1), b"")])
    with df11mod.open(compress(cli, huge, str(tmp_path / "huge.df11"))) as f:
        assert f.info("e")["shape"] == (0, 2**64 - 1)
        with pytest.raises(df11mod.UsageError) as e:
            f.read("e")
        assert "tensor 'e' of shape [0, 18446744073709551615] has no numpy form" in e.value.message


def test_dtypes_of_safetensors_08(df11mod, cli, tmp_path):
    """The dtypes safetensors 0.8 added: float8 ones through ml_dtypes (or
    uint8 without it), complex64 as numpy's, the packed F4/F6 as raw bytes."""
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    scales = (118 + rng.integers(0, 8, 256)).astype(np.uint8).tobytes()
    c64 = (rng.standard_normal(64) + 1j * rng.standard_normal(64)).astype(np.complex64)
    src = str(tmp_path / "mx.safetensors")
    st_io.write(src, [("blocks", "F4", [64, 128], blocks), ("scales", "F8_E8M0", [64, 4], scales),
                      ("f6", "F6_E2M3", [8], bytes(range(6))), ("fnuz", "F8_E4M3FNUZ", [3], b"\x00\x01\x80"),
                      ("rot", "C64", [64], c64.tobytes())])
    packed = compress(cli, src, str(tmp_path / "mx.df11"))
    with df11mod.open(packed) as f:
        b = f.read("blocks")
        assert b.dtype == np.uint8 and b.shape == (4096,) and b.tobytes() == blocks
        assert f.info("blocks")["shape"] == (64, 128)
        assert f.read("f6").tobytes() == bytes(range(6))
        r = f.read("rot")
        assert r.dtype == np.complex64 and r.shape == (64,) and np.array_equal(r, c64)
        s = f.read("scales")
        assert s.shape == (64, 4) and s.tobytes() == scales
        try:
            import ml_dtypes
            want = np.dtype(getattr(ml_dtypes, "float8_e8m0fnu", np.uint8))
        except ImportError:
            want = np.dtype(np.uint8)
        assert s.dtype == want
        assert f.read("fnuz").tobytes() == b"\x00\x01\x80"
