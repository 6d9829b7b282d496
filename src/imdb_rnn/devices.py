"""Which devices this process sees, and what runs the recurrent layers on them: where the
strategies and the layers ask TensorFlow for GPUs (the native kernel, which this module
imports, asks for itself).

On a GPU, Keras runs GRUs and LSTMs with the fused cuDNN kernel; on a CPU, GRUs run imdb-rnn's
native kernel (`imdb_rnn.native`) where it builds, else a TensorFlow loop, and LSTMs Keras' own.

Example:

>>> rnn_kernel_name("lstm") in ("keras", "cudnn")
True
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from imdb_rnn import native

__all__ = [
    "gpu_count",
    "gpu_visible",
    "prepare_native_kernel",
    "rnn_kernel_name",
    "seed_everything",
]


def gpu_count() -> int:
    """The logical GPUs TensorFlow sees."""
    return len(tf.config.list_logical_devices("GPU"))


def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU (then Keras' cuDNN kernels run the recurrent layers)."""
    return gpu_count() > 0


def rnn_kernel_name(cell: str = "gru") -> str:
    """What runs a recurrent layer of this kind here: `"cudnn"` (a GPU is visible), `"native"`
    (imdb-rnn's CPU kernel for GRUs), `"tensorflow"` (its TensorFlow loop, where the native
    kernel is unavailable) or `"keras"` (Keras' own loop: LSTMs on a CPU)."""
    if gpu_visible():
        return "cudnn"
    if cell != "gru":
        return "keras"
    return "native" if native.available() else "tensorflow"


def prepare_native_kernel(
    cell: str = "gru", *, on_stage: Callable[[str], None] | None = None
) -> None:
    """Compiles the native GRU kernel now, announcing it with `on_stage`, when a CPU GRU will
    use it and it is not built on this machine yet (about 25 s, once). Otherwise does nothing;
    a kernel that cannot be built only warns (see `imdb_rnn.native`)."""
    if cell == "gru" and native.wanted() and not native.is_built():
        if on_stage is not None:
            on_stage("Compiling the native GRU kernel (once on this machine)")
        native.available()


#: TensorFlow's global seed for `seed_everything(0)`: TensorFlow reads a global seed of 0 with
#: a tensor op seed (the epochs' shuffles in `tf.data`) as a Python truth test on the tensor,
#: which fails inside a `tf.data` function; any other global seed is read without one.
_TENSORFLOW_SEED_FOR_ZERO = 2**31 - 2


def seed_everything(seed: int) -> None:
    """Seeds Python's, NumPy's and TensorFlow's random numbers with `seed`, as
    `keras.utils.set_random_seed` does (TensorFlow's with `_TENSORFLOW_SEED_FOR_ZERO` for 0)."""
    import keras

    keras.utils.set_random_seed(seed)
    if seed == 0:
        tf.random.set_seed(_TENSORFLOW_SEED_FOR_ZERO)
