"""Tests for imdb_rnn.native: the fused CPU kernel of the GRU recurrence and its fallback."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from imdb_rnn import native
from imdb_rnn.layers import FastBidirectional

# On a GPU, Keras' cuDNN kernel runs the GRU: neither the native kernel nor its fallback is used.
on_cpu = pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="a GPU runs cuDNN instead"
)
needs_native = pytest.mark.skipif(
    (shutil.which(os.environ.get("CXX") or "c++") is None)
    or bool(tf.config.list_physical_devices("GPU")),
    reason="the native kernel is not used here (no C++ compiler, or a GPU runs cuDNN instead)",
)


def _numpy_states(projected, lengths, kernel, bias):
    """The recurrence in numpy, step by step, as the reference."""
    time, batch, three_units = projected.shape
    units = three_units // 3
    state = np.zeros((batch, units), "float32")
    states = []
    for t in range(time):
        inner = state @ kernel + bias
        z = 1 / (1 + np.exp(-(projected[t, :, :units] + inner[:, :units])))
        r = 1 / (1 + np.exp(-(projected[t, :, units : 2 * units] + inner[:, units : 2 * units])))
        candidate = np.tanh(projected[t, :, 2 * units :] + r * inner[:, 2 * units :])
        new = z * state + (1 - z) * candidate
        state = np.where((t < lengths)[:, None], new, state)
        states.append(state)
    return np.stack(states)


def _random_inputs(time=9, batch=6, units=5, seed=0):
    rng = np.random.default_rng(seed)
    projected = rng.normal(size=(time, batch, 3 * units)).astype("float32")
    kernel = (rng.normal(size=(units, 3 * units)) * 0.5).astype("float32")
    bias = rng.normal(size=(3 * units,)).astype("float32")
    # Full, partial, one-step and empty rows, then random lengths.
    fixed = np.array([time, 4, 1, 0, time - 1, 2], "int32")[:batch]
    lengths = np.concatenate([fixed, rng.integers(0, time + 1, size=batch - len(fixed))])
    return projected, lengths.astype("int32"), kernel, bias


@needs_native
def test_native_kernel_builds_and_loads():
    """The kernel compiles on this machine and is cached where cache_path() says."""
    assert native.available()
    assert native.is_built()
    assert native.cache_path().is_file()


@needs_native
@pytest.mark.parametrize("batch", [6, 300])
@pytest.mark.parametrize("training", [True, False])
def test_native_states_and_gradients_match_the_recurrence(training, batch):
    """States equal a step-by-step numpy GRU (rows ending early carry their state, an empty row
    stays zero); gradients equal TensorFlow's autodiff of the graph loop, also when the gates
    were not kept (training=False) and must be recomputed. A batch of 300 rows is split into
    blocks that run on separate threads, with the same results."""
    projected, lengths, kernel, bias = _random_inputs(batch=batch)
    expected = _numpy_states(projected, lengths, kernel, bias)
    tensors = [tf.constant(projected), tf.constant(kernel), tf.constant(bias)]
    weights = tf.constant(np.random.default_rng(1).normal(size=expected.shape).astype("float32"))

    with tf.GradientTape() as tape:
        tape.watch(tensors)
        states = native.gru_sequence(
            tensors[0], tf.constant(lengths), tensors[1], tensors[2], training=training
        )
        loss = tf.reduce_sum(states * weights)
    native_grads = tape.gradient(loss, tensors)
    np.testing.assert_allclose(states.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(states.numpy()[:, 3], 0.0)

    keep = tf.transpose(tf.sequence_mask(lengths, projected.shape[0], dtype="float32"))[:, :, None]
    with tf.GradientTape() as tape:
        tape.watch(tensors)

        def step(state, elements):
            x_t, keep_t = elements
            inner = tf.matmul(state, tensors[1]) + tensors[2]
            x_z, x_r, x_h = tf.split(x_t, 3, axis=-1)
            i_z, i_r, i_h = tf.split(inner, 3, axis=-1)
            z, r = tf.sigmoid(x_z + i_z), tf.sigmoid(x_r + i_r)
            new = z * state + (1 - z) * tf.tanh(x_h + r * i_h)
            return state + keep_t * (new - state)

        reference = tf.scan(step, (tensors[0], keep), initializer=tf.zeros((batch, 5)))
        loss = tf.reduce_sum(reference * weights)
    reference_grads = tape.gradient(loss, tensors)
    for ours, theirs in zip(native_grads, reference_grads, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4)


def _forward_args(time=4, batch=3, units=2):
    projected, lengths, kernel, bias = _random_inputs(time=time, batch=batch, units=units)
    return {"projected": projected, "lengths": lengths, "kernel": kernel, "bias": bias}


def _grad_args(time=4, batch=3, units=2):
    rng = np.random.default_rng(2)
    _, lengths, kernel, _ = _random_inputs(time=time, batch=batch, units=units)
    return {
        "grad_states": rng.normal(size=(time, batch, units)).astype("float32"),
        "states": rng.normal(size=(time, batch, units)).astype("float32"),
        "activations": rng.normal(size=(time, batch, 4 * units)).astype("float32"),
        "lengths": lengths,
        "kernel": kernel,
    }


_BAD_FORWARD_INPUTS = {
    "projected of rank 2": {"projected": np.zeros((4, 6), "float32")},
    "projected not 3 * units wide": {"projected": np.zeros((4, 3, 5), "float32")},
    "kernel of rank 0": {"kernel": np.float32(1.0)},
    "kernel of rank 1": {"kernel": np.zeros((6,), "float32")},
    "kernel not units x 3 * units": {"kernel": np.zeros((2, 4), "float32")},
    "bias of rank 0": {"bias": np.float32(1.0)},
    "bias of the wrong size": {"bias": np.zeros((5,), "float32")},
    "lengths of rank 0": {"lengths": np.int32(4)},
    "lengths of rank 2": {"lengths": np.zeros((3, 1), "int32")},
    "lengths shorter than the batch": {"lengths": np.zeros((2,), "int32")},
}

_BAD_GRAD_INPUTS = {
    "states of rank 2": {
        "states": np.zeros((4, 3), "float32"),
        "grad_states": np.zeros((4, 3), "float32"),
    },
    "states of rank 0": {"states": np.float32(0.0), "grad_states": np.float32(0.0)},
    "states wider than units": {
        "states": np.zeros((4, 3, 3), "float32"),
        "grad_states": np.zeros((4, 3, 3), "float32"),
    },
    "grad_states of another shape": {"grad_states": np.zeros((4, 2, 2), "float32")},
    "activations of rank 2": {"activations": np.zeros((4, 24), "float32")},
    "activations not 4 * units wide": {"activations": np.zeros((4, 3, 6), "float32")},
    "activations of another time": {"activations": np.zeros((5, 3, 8), "float32")},
    "kernel of rank 0": {"kernel": np.float32(1.0)},
    "kernel of rank 1": {"kernel": np.zeros((6,), "float32")},
    "kernel not units x 3 * units": {"kernel": np.zeros((2, 4), "float32")},
    "kernel of other units": {"kernel": np.zeros((3, 9), "float32")},
    "lengths of rank 2": {"lengths": np.zeros((3, 1), "int32")},
    "lengths shorter than the batch": {"lengths": np.zeros((2,), "int32")},
}


def _call_forward(library, args):
    return library.imdb_rnn_gru_sequence(
        args["projected"], args["lengths"], args["kernel"], args["bias"]
    )


def _call_grad(library, args):
    return library.imdb_rnn_gru_sequence_grad(
        args["grad_states"], args["states"], args["activations"], args["lengths"], args["kernel"]
    )


@needs_native
def test_native_ops_accept_consistent_shapes():
    """The well-formed inputs of the shape tests run, so each bad case differs by its defect."""
    library = native.load()
    states, activations = _call_forward(library, _forward_args())
    assert states.shape == (4, 3, 2) and activations.shape == (4, 3, 8)
    grad_projected, grad_inner = _call_grad(library, _grad_args())
    assert grad_projected.shape == grad_inner.shape == (4, 3, 6)


@needs_native
@pytest.mark.parametrize("case", sorted(_BAD_FORWARD_INPUTS))
def test_native_op_rejects_inconsistent_shapes(case):
    """ImdbRnnGruSequence checks every rank and dimension before it reads a buffer."""
    library = native.load()
    with pytest.raises(tf.errors.InvalidArgumentError):
        _call_forward(library, {**_forward_args(), **_BAD_FORWARD_INPUTS[case]})


@needs_native
@pytest.mark.parametrize("case", sorted(_BAD_GRAD_INPUTS))
def test_native_gradient_op_rejects_inconsistent_shapes(case):
    """ImdbRnnGruSequenceGrad checks the rank of states, the kernel's (units, 3 * units) and
    every other shape before it reads a buffer."""
    library = native.load()
    with pytest.raises(tf.errors.InvalidArgumentError):
        _call_grad(library, {**_grad_args(), **_BAD_GRAD_INPUTS[case]})


@needs_native
@pytest.mark.parametrize(
    ("call", "args", "bad"),
    [
        (_call_forward, _forward_args, {"kernel": np.float32(1.0)}),
        (_call_forward, _forward_args, {"lengths": np.zeros((2,), "int32")}),
        (_call_grad, _grad_args, {"kernel": np.zeros((2, 4), "float32")}),
        (_call_grad, _grad_args, {"states": np.zeros((4, 3), "float32")}),
    ],
)
def test_native_shape_functions_reject_inconsistent_shapes(call, args, bad):
    """Traced in a graph, the ops' shape functions refuse the same shapes (TensorFlow reports a
    shape function's error as a ValueError while tracing)."""
    library = native.load()
    values = {**args(), **bad}
    specs = {
        name: tf.TensorSpec(np.shape(value), tf.as_dtype(np.asarray(value).dtype))
        for name, value in values.items()
    }
    function = tf.function(lambda **tensors: call(library, tensors))
    with pytest.raises(ValueError):
        function.get_concrete_function(**specs)


def _traced_ops(layer, x, mask):
    function = tf.function(lambda x, mask: layer(x, mask=mask, training=True))
    graph = function.get_concrete_function(x, mask).graph
    names = {op.type for op in graph.get_operations()}
    for function_def in graph.as_graph_def().library.function:
        names.update(node.op for node in function_def.node_def)
    return names


@needs_native
def test_disabled_traces_the_graph_loop():
    """Under native.disabled() (as export traces), the layer holds no native op; otherwise it
    does."""
    layer = FastBidirectional(keras.layers.GRU(3), fused="always")
    x, mask = tf.zeros((2, 4, 5)), tf.sequence_mask([4, 2], 4)
    assert "ImdbRnnGruSequence" in _traced_ops(layer, x, mask)
    with native.disabled():
        assert "ImdbRnnGruSequence" not in _traced_ops(layer, x, mask)
        assert not native.available()


def test_environment_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert not native.available()


@pytest.fixture
def fresh_state(monkeypatch, tmp_path):
    """A native module that has loaded nothing yet, caching into tmp_path. Tests using it must
    not load a kernel: this process may hold one already, and TensorFlow would see every op
    registered twice."""
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_failure", None)
    monkeypatch.delattr(native.available, "_warned", raising=False)
    monkeypatch.setenv(native.ENV_CACHE_DIR, str(tmp_path))
    return tmp_path


@on_cpu
def test_missing_compiler_falls_back_with_a_warning(monkeypatch, fresh_state):
    """Without a compiler the layer warns once and runs the graph loop, with the same result."""
    monkeypatch.setenv("CXX", "no-such-compiler-imdb-rnn")
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert not native.available()
    with pytest.raises(native.NativeBuildError, match="no C\\+\\+ compiler"):
        native.load()
    layer = FastBidirectional(keras.layers.GRU(3), fused="always")
    reference = FastBidirectional(keras.layers.GRU(3), fused="never")
    x, mask = tf.random.normal((2, 4, 5), seed=1), tf.sequence_mask([4, 2], 4)
    layer(x, mask=mask)
    reference(x, mask=mask)
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x, mask=mask), reference(x, mask=mask), atol=1e-5)
    assert not list(fresh_state.rglob("*.so"))


def test_compiler_errors_are_reported(monkeypatch, fresh_state, caplog):
    """A failing compiler's exit status ends up in the error; no partial file is left. The
    compile is announced on the logger first (a script loading a model would wait in silence)."""
    monkeypatch.setenv("CXX", "false")
    caplog.set_level("WARNING", logger="imdb_rnn.native")  # the commands raise it to ERROR
    with pytest.raises(native.NativeBuildError, match="failed \\(1\\)"):
        native.build()
    assert "compiling its native GRU kernel" in caplog.text
    assert not [path for path in fresh_state.rglob("*") if path.is_file()]


_DAMAGED_CACHE_SCRIPT = """
import numpy as np, tensorflow as tf, keras
from imdb_rnn import native
from imdb_rnn.layers import FastBidirectional
target = native.cache_path()
target.parent.mkdir(parents=True)
target.write_bytes(b"not a shared library")
assert native.available()
assert target.read_bytes()[:4] == b"\\x7fELF"
layer = FastBidirectional(keras.layers.GRU(3), fused="always")
print(layer(tf.ones((2, 4, 5)), mask=tf.sequence_mask([4, 2], 4)).shape)
"""


@pytest.mark.slow
@needs_native
def test_damaged_cache_entry_is_rebuilt(tmp_path):
    """A cached kernel that does not load (truncated, foreign) is compiled again and used. In a
    process of its own: a second copy of the kernel in this one would register its ops twice."""
    env = {**os.environ, native.ENV_CACHE_DIR: str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", _DAMAGED_CACHE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(2, 6)")


def test_unwritable_cache_is_reported(monkeypatch, fresh_state):
    """A cache folder that cannot be created gives a NativeBuildError naming the variable."""
    blocker = fresh_state / "file"
    blocker.write_text("")
    monkeypatch.setenv(native.ENV_CACHE_DIR, str(blocker / "cache"))
    with pytest.raises(native.NativeBuildError, match=native.ENV_CACHE_DIR):
        native.build()


@on_cpu
def test_first_use_compiles_with_a_stage_message(monkeypatch):
    """Train, eval and predict announce the one-time compile; nothing is said once it is built,
    for LSTM models, or with the kernel switched off."""
    from imdb_rnn.devices import prepare_native_kernel

    built = {"value": False}
    calls = []
    monkeypatch.setattr(native, "is_built", lambda: built["value"])
    monkeypatch.setattr(native, "available", lambda: calls.append("build") or True)
    stages: list[str] = []
    prepare_native_kernel(on_stage=stages.append)
    assert stages == ["Compiling the native GRU kernel (once on this machine)"]
    assert calls == ["build"]
    prepare_native_kernel("lstm", on_stage=stages.append)
    built["value"] = True
    prepare_native_kernel(on_stage=stages.append)
    built["value"] = False
    monkeypatch.setenv(native.ENV_SWITCH, "off")
    prepare_native_kernel(on_stage=stages.append)
    assert len(stages) == 1 and calls == ["build"]


@pytest.mark.parametrize(("accepts", "expected"), [(True, ("-mno-avx512fp16",)), (False, ())])
def test_isa_flags_are_probed_on_the_compiler(tmp_path, accepts, expected):
    """ISA flags Eigen cannot compile with are switched off only where the compiler knows them."""
    compiler = tmp_path / "fake-c++"
    compiler.write_text(f"#!/bin/sh\nexit {0 if accepts else 1}\n")
    compiler.chmod(0o755)
    native._unsupported_isa_flags.cache_clear()
    try:
        assert native._unsupported_isa_flags(str(compiler)) == expected
    finally:
        native._unsupported_isa_flags.cache_clear()


_PLANTED_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    const char *path = getenv("PLANTED_MARKER");
    if (path) { FILE *f = fopen(path, "w"); if (f) { fputs("ran", f); fclose(f); } }
}
"""


def _planted_library(tmp_path):
    """A valid shared library without imdb-rnn's ops whose constructor writes a marker file."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the planted library")
    source = tmp_path / "planted.c"
    source.write_text(_PLANTED_SOURCE)
    library = tmp_path / "planted.so"
    subprocess.run([compiler, "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    return library


_PLANTED_CACHE_SCRIPT = """
import shutil, sys, tensorflow as tf, keras
from imdb_rnn import native
from imdb_rnn.layers import FastBidirectional
target = native.cache_path()
target.parent.mkdir(parents=True)
shutil.copyfile(sys.argv[1], target)
assert native.available()
assert native._sha256(target) == native._digest_path(target).read_text().strip()
layer = FastBidirectional(keras.layers.GRU(3), fused="always")
print(layer(tf.ones((2, 4, 5)), mask=tf.sequence_mask([4, 2], 4)).shape)
"""


@pytest.mark.slow
@needs_native
def test_planted_library_is_never_loaded_and_the_kernel_is_rebuilt(tmp_path):
    """A valid library put at the cache path (without the digest a build writes) is not loaded,
    so its constructor never runs; the kernel is compiled again and used."""
    library = _planted_library(tmp_path)
    marker = tmp_path / "constructor-ran"
    cache = tmp_path / "cache"
    env = {
        **os.environ,
        native.ENV_CACHE_DIR: str(cache),
        "PLANTED_MARKER": str(marker),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    result = subprocess.run(
        [sys.executable, "-c", _PLANTED_CACHE_SCRIPT, str(library)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(2, 6)")
    assert not marker.exists()


def test_cache_writable_by_others_is_not_loaded(monkeypatch, fresh_state, tmp_path):
    """A kernel in a cache folder that other users can write is neither loaded nor rebuilt
    there: the error names the folder and the variable to set."""
    library = _planted_library(tmp_path)
    marker = tmp_path / "constructor-ran"
    monkeypatch.setenv("PLANTED_MARKER", str(marker))
    target = native.cache_path()
    target.parent.mkdir(parents=True)
    shutil.copyfile(library, target)
    native._digest_path(target).write_text(native._sha256(target))
    target.parent.chmod(0o777)
    with pytest.raises(native.NativeBuildError, match="writable by other users"):
        native.load()
    assert not native.is_built()
    assert not marker.exists()


def test_library_that_does_not_match_its_digest_is_not_built(fresh_state, tmp_path):
    """is_built() (and so loading without a rebuild) needs the digest written at build time."""
    target = native.cache_path()
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\x7fELF planted")
    assert not native.is_built()
    native._digest_path(target).write_text(native._sha256(target))
    assert native.is_built()
    target.write_bytes(b"\x7fELF swapped")
    assert not native.is_built()


_OPLESS_SCRIPT = """
import shutil, sys, warnings
from imdb_rnn import native
target = native.cache_path()
target.parent.mkdir(parents=True)
shutil.copyfile(sys.argv[1], target)
native._digest_path(target).write_text(native._sha256(target))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print(native.available())
print(caught[0].message if caught else "no warning")
print(target.exists(), native._digest_path(target).exists())
"""


@pytest.mark.slow
def test_library_without_the_ops_falls_back_and_is_removed(tmp_path):
    """A cached library with a valid digest but none of the kernel's ops (never the case for a
    build) falls back with a warning instead of an internal error, and is removed so that the
    next process compiles the kernel again."""
    library = _planted_library(tmp_path)
    env = {**os.environ, native.ENV_CACHE_DIR: str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", _OPLESS_SCRIPT, str(library)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "False"
    assert "holds none of imdb-rnn's ops" in lines[1]
    assert lines[2] == "False False"
