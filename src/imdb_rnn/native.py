"""The fused CPU kernel of the GRU recurrence: built on first use, optional, with a fallback.

`FastBidirectional` runs each GRU direction on the CPU as one TensorFlow op,
`ImdbRnnGruSequence` (and `ImdbRnnGruSequenceGrad` for training), written in C++ in
`kernels/gru_sequence.cc`. The op does the whole time loop natively: per step one small matrix
product (Eigen) and the gate arithmetic, instead of a dozen graph operations per step, which is
what bounds a GRU step on a CPU. Results equal Keras' `GRU` to float32 rounding.

The kernel is compiled the first time it is needed (about 25 s, with the C++ compiler named by
`CXX` or `c++`, TensorFlow's headers and `-march=native`) and cached per machine, source and
TensorFlow version under `IMDB_RNN_CACHE_DIR`, else `$XDG_CACHE_HOME/imdb-rnn`, else
`~/.cache/imdb-rnn`. Where it cannot be built or loaded (no compiler, another platform), or with
`IMDB_RNN_NATIVE=0`, `FastBidirectional` runs its TensorFlow graph loop instead, with the same
results, about half as fast; a `RuntimeWarning` says why once.

Example:

>>> from imdb_rnn import native
>>> native.cache_path().name
'imdb_rnn_gru_sequence.so'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf

from imdb_rnn.errors import NativeBuildError
from imdb_rnn.files import current_umask, write_text

__all__ = [
    "ENV_CACHE_DIR",
    "ENV_SWITCH",
    "NativeBuildError",
    "available",
    "build",
    "cache_path",
    "disabled",
    "gru_sequence",
    "is_built",
    "load",
    "wanted",
]

#: Set to 0, false, off or no to never use the native kernel.
ENV_SWITCH = "IMDB_RNN_NATIVE"
#: Folder for the compiled kernel (default: `$XDG_CACHE_HOME/imdb-rnn` or `~/.cache/imdb-rnn`).
ENV_CACHE_DIR = "IMDB_RNN_CACHE_DIR"

_SOURCE = Path(__file__).with_name("kernels") / "gru_sequence.cc"
_logger = logging.getLogger(__name__)
_LIBRARY_NAME = "imdb_rnn_gru_sequence.so"
_OPS = ("imdb_rnn_gru_sequence", "imdb_rnn_gru_sequence_grad")
_BUILD_TIMEOUT_S = 600

_lock = threading.Lock()
_library: Any = None
_failure: str | None = None
_disabled_depth = 0


def _switched_off() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "off", "no")


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within this block, layers traced use TensorFlow's graph loop instead of the native op.

    `deploy.export` traces under it, so that a SavedModel never holds the op (a model server
    without this package could not run it).
    """
    global _disabled_depth
    with _lock:
        _disabled_depth += 1
    try:
        yield
    finally:
        with _lock:
            _disabled_depth -= 1


def _compiler() -> str:
    return os.environ.get("CXX") or "c++"


def _build_flags() -> list[str]:
    return [
        "-shared",
        "-fPIC",
        "-O3",
        "-DNDEBUG",
        "-march=native",
        *_unsupported_isa_flags(_compiler()),
        "-Wno-deprecated-declarations",
        *tf.sysconfig.get_compile_flags(),
    ]


#: Instruction sets that `-march=native` may switch on but TensorFlow's bundled Eigen does not
#: compile with: its AVX512-FP16 packet maths fails under GCC 12 ("expected initializer before
#: '<'"), so on CPUs with AVX512-FP16 (Sapphire Rapids and later) the build would always fail.
#: The GRU kernel is float32 and gains nothing from them.
_DISABLED_ISA_FLAGS = ("-mno-avx512fp16",)


@functools.cache
def _unsupported_isa_flags(compiler: str) -> tuple[str, ...]:
    """The flags of `_DISABLED_ISA_FLAGS` that `compiler` accepts (other architectures and
    older compilers do not know them)."""
    path = shutil.which(compiler)
    if path is None:
        return ()
    accepted = []
    for flag in _DISABLED_ISA_FLAGS:
        try:
            probe = subprocess.run(
                [path, flag, "-x", "c++", "-fsyntax-only", "-"],
                input="",
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            accepted.append(flag)
    return tuple(accepted)


def _cpu_signature() -> str:
    """The CPU model and instruction sets: a kernel built with -march=native stays on its CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return platform.processor()
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(wanted)))


def cache_path() -> Path:
    """Where the kernel for this source, TensorFlow, compiler and CPU is (or will be) cached."""
    key = hashlib.sha256()
    for part in (
        _SOURCE.read_bytes(),
        tf.__version__.encode(),
        _compiler().encode(),
        " ".join(_build_flags() + tf.sysconfig.get_link_flags()).encode(),
        platform.machine().encode(),
        _cpu_signature().encode(),
    ):
        key.update(part)
        key.update(b"\0")
    root = os.environ.get(ENV_CACHE_DIR)
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = str(Path(xdg) / "imdb-rnn") if xdg else str(Path.home() / ".cache" / "imdb-rnn")
    return Path(root) / "native" / key.hexdigest()[:20] / _LIBRARY_NAME


def is_built() -> bool:
    """True when the kernel is already compiled for this machine (loading it is then instant):
    the cached file is there, in folders only this user can write, and matches its digest."""
    path = cache_path()
    return _unsafe_location(path) is None and _unverified(path) is None


def _digest_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unsafe_location(library: Path) -> str | None:
    """Why the kernel's cache folders are not safe to load code from, or None when they are:
    each of the kernel's folder, `native/` and the cache root must belong to this user (or
    root) and be writable by no one else (unless sticky, like /tmp), so that no other user can
    put a library there or swap the one checked for another before it is loaded."""
    user = os.geteuid()
    for folder in (library.parent, library.parent.parent, library.parent.parent.parent):
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            continue
        except OSError as error:
            return f"cannot inspect the kernel cache folder {folder} ({error.strerror})"
        if not stat.S_ISDIR(info.st_mode):
            return f"the kernel cache folder {folder} is not a folder (a link?)"
        if info.st_uid not in (user, 0):
            return f"the kernel cache folder {folder} belongs to another user"
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            return f"the kernel cache folder {folder} is writable by other users"
    return None


def _unverified(library: Path) -> str | None:
    """Why the cached kernel may not be loaded as it is, or None when it may: it must be a
    regular file of this user, writable by no one else, whose SHA-256 is the digest written
    beside it when it was built. (A library runs code as soon as it is loaded.)"""
    digest_path = _digest_path(library)
    try:
        info = os.lstat(library)
        digest_info = os.lstat(digest_path)
    except FileNotFoundError:
        return "it is not built (or not by imdb-rnn: no digest)"
    user = os.geteuid()
    for path, entry in ((library, info), (digest_path, digest_info)):
        if not stat.S_ISREG(entry.st_mode):
            return f"{path} is not a regular file"
        if entry.st_uid != user or entry.st_mode & 0o022:
            return f"{path} belongs to another user or is writable by others"
    if digest_info.st_size > 1024:
        return f"{digest_path} is not a digest"
    expected = digest_path.read_text(encoding="ascii", errors="replace").strip()
    if _sha256(library) != expected:
        return f"{library} does not match the digest written when it was built"
    return None


def build(force: bool = False) -> Path:
    """Compiles the kernel into the cache (unless it is there) and returns its path.

    Several processes may build at once: each compiles to its own temporary file, and the last
    rename wins with an identical file.

    Raises:
        NativeBuildError: no compiler, or the compiler failed (its last lines are in the message).
    """
    target = cache_path()
    unsafe = _unsafe_location(target)
    if unsafe is not None:
        raise NativeBuildError(f"{unsafe}; set {ENV_CACHE_DIR} to a folder of your own")
    if not force and _unverified(target) is None:
        return target
    compiler = shutil.which(_compiler())
    if compiler is None:
        raise NativeBuildError(f"no C++ compiler found (tried {_compiler()!r}; set CXX)")
    # A script that loads a model would otherwise wait in silence: Python shows a warning of
    # this logger on stderr unless logging is set up otherwise (the CLI says it as a stage).
    _logger.warning(
        "imdb-rnn: compiling its native GRU kernel for this machine, once (about 25-50 s; "
        "cached in %s; %s=0 turns it off)",
        target.parent,
        ENV_SWITCH,
    )
    try:
        root = target.parent.parent.parent
        root.parent.mkdir(parents=True, exist_ok=True)
        for folder in (root, target.parent.parent, target.parent):
            folder.mkdir(mode=0o755, exist_ok=True)  # never writable by others (`umask 002`)
        handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".build-", suffix=".so")
    except OSError as error:
        raise NativeBuildError(
            f"cannot write to the kernel cache {target.parent} ({error.strerror}); "
            f"set {ENV_CACHE_DIR} to a writable folder"
        ) from error
    os.close(handle)
    command = [
        compiler,
        *_build_flags(),
        str(_SOURCE),
        "-o",
        partial,
        *tf.sysconfig.get_link_flags(),
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-8:])
            raise NativeBuildError(f"{Path(compiler).name} failed ({result.returncode}):\n{tail}")
        # The digest is written after the library: a library without its digest is never
        # loaded, whoever put it there.
        os.chmod(partial, 0o755 & ~current_umask())
        os.replace(partial, target)
        write_text(_digest_path(target), _sha256(target) + "\n")
    except OSError as error:
        raise NativeBuildError(
            f"cannot write to the kernel cache {target.parent} ({error.strerror}); "
            f"set {ENV_CACHE_DIR} to a writable folder"
        ) from error
    except subprocess.TimeoutExpired as error:
        raise NativeBuildError(f"the compiler ran over {_BUILD_TIMEOUT_S} s") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return target


def load() -> Any:
    """Returns the loaded op library, building it first if needed.

    Raises:
        NativeBuildError: the kernel cannot be built or loaded here.
    """
    global _library, _failure
    with _lock:
        if _library is not None:
            return _library
        if _failure is not None:
            raise NativeBuildError(_failure)
        try:
            # build() returns a library only once it passed the checks of `_unsafe_location`
            # and `_unverified` (a damaged, foreign or planted file is compiled again first).
            path = build()
            try:
                library = tf.load_op_library(str(path))
            except (tf.errors.OpError, OSError):
                # Damaged after its digest was written: build it again, once.
                path = build(force=True)
                try:
                    library = tf.load_op_library(str(path))
                except (tf.errors.OpError, OSError) as error:
                    raise NativeBuildError(f"cannot load {path}: {error}") from error
            if not all(hasattr(library, op) for op in _OPS):
                # Loading again under the same name would give the same library back: remove
                # it so that the next process compiles the kernel again.
                for stale in (path, _digest_path(path)):
                    stale.unlink(missing_ok=True)
                raise NativeBuildError(
                    f"{path} holds none of imdb-rnn's ops; it was removed and is compiled again "
                    "on the next run"
                )
            _library = library
        except NativeBuildError as error:
            _failure = str(error)
            raise
        return _library


def wanted() -> bool:
    """True when a CPU GRU would use the native kernel if it loads: switched on, not within
    `disabled()`, and no GPU visible (on a GPU, Keras' cuDNN kernel runs instead)."""
    return not _switched_off() and _disabled_depth == 0 and not _gpu_visible()


def _gpu_visible() -> bool:
    # Asked of TensorFlow here rather than through `imdb_rnn.devices`, which sits above this
    # module (it reports and prepares the kernel that runs) and imports it.
    return bool(tf.config.list_logical_devices("GPU"))


def available() -> bool:
    """True when a CPU GRU uses the native kernel here: it is `wanted()` and loads (building it
    if needed).

    The first call that fails warns once with the reason; layers then use the graph loop.
    """
    if not wanted():
        return False
    try:
        load()
    except NativeBuildError as error:
        if not getattr(available, "_warned", False):
            available._warned = True  # type: ignore[attr-defined]
            warnings.warn(
                f"imdb-rnn runs the GRU with TensorFlow ops (about half as fast on a CPU): "
                f"the native kernel is unavailable: {error}",
                RuntimeWarning,
                stacklevel=2,
            )
        return False
    return True


def gru_sequence(
    projected: tf.Tensor,
    lengths: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    recurrent_bias: tf.Tensor,
    training: bool | None = None,
) -> tf.Tensor:
    """Runs one GRU direction over right-padded steps with the native op; differentiable.

    Args:
        projected: `(time, batch, 3 * units)` input projections with the input bias, gates in
            Keras' order z | r | h.
        lengths: `(batch,)` int32 number of valid steps per row; later steps carry the state.
        recurrent_kernel: `(units, 3 * units)`.
        recurrent_bias: `(3 * units,)`.
        training: when falsy, the gates are not kept for a gradient (they are recomputed if one
            is asked for anyway).

    Returns:
        The state after every step, `(time, batch, units)`, from a zero initial state.
    """
    library = load()
    lengths = tf.cast(lengths, "int32")
    keep = bool(training)

    @tf.custom_gradient
    def run(projected: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> Any:
        states, activations = library.imdb_rnn_gru_sequence(
            projected, lengths, kernel, bias, save_activations=keep
        )

        def gradient(grad_states: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            saved = activations
            if not keep:
                _, saved = library.imdb_rnn_gru_sequence(projected, lengths, kernel, bias)
            grad_projected, grad_inner = library.imdb_rnn_gru_sequence_grad(
                grad_states, states, saved, lengths, kernel
            )
            previous = tf.concat([tf.zeros_like(states[:1]), states[:-1]], axis=0)
            grad_kernel = tf.tensordot(previous, grad_inner, [[0, 1], [0, 1]])
            return grad_projected, grad_kernel, tf.reduce_sum(grad_inner, axis=[0, 1])

        return states, gradient

    return run(projected, recurrent_kernel, recurrent_bias)
