"""Building blocks: the text encoder, the recurrent stack and the classifier head.

Everything here is a registered Keras object, so a saved model reloads with `safe_mode` on and
without `custom_objects`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

from imdb_rnn import devices, native

__all__ = [
    "OOV_ID",
    "PAD_ID",
    "PUNCTUATION",
    "FastBidirectional",
    "KnownIds",
    "MaskedPooling",
    "TextEncoder",
    "gru_step",
    "imdb_standardize",
    "recurrent_stack",
    "sublayers",
]

PAD_ID = 0
OOV_ID = 1

# Characters that Python's str.splitlines() treats as line breaks. Keras writes the vocabulary
# asset with "\n".join and reads it back with splitlines(), so a token holding any of them would
# break reloading ("repeated term"); IMDB reviews contain U+0085. They become spaces here.
_LINE_BREAKS = "[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"
_HTML_BREAK = r"<br\s*/?>"
#: The characters `imdb_standardize` removes (a regex class): Keras' default punctuation set for
#: "lower_and_strip_punctuation".
PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


@keras.saving.register_keras_serializable(package="imdb_rnn")
def imdb_standardize(texts: tf.Tensor) -> tf.Tensor:
    """Lower-cases reviews, turns `<br />` tags and line-break characters into spaces and strips
    punctuation (the same set as Keras' `lower_and_strip_punctuation`).

    Args:
        texts: a string tensor.

    Returns:
        The standardised string tensor, of the same shape.
    """
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, _HTML_BREAK, " ")
    texts = tf.strings.regex_replace(texts, _LINE_BREAKS, " ")
    return tf.strings.regex_replace(texts, PUNCTUATION, "")


_LOADING_NOTE_KEY = "how_to_load"
_LOADING_NOTE = (
    "This model needs imdb-rnn's layers: run `import imdb_rnn.layers` (pip install imdb-rnn) "
    "before keras.models.load_model, or use imdb_rnn.load_text_model; the SavedModel of "
    "`imdb-rnn export` loads without imdb-rnn (keras.layers.TFSMLayer, tf.saved_model.load)."
)


@keras.saving.register_keras_serializable(package="imdb_rnn")
class TextEncoder(keras.layers.Layer):
    """Turns raw review strings into right-padded token ids that a masked RNN can consume.

    Wraps `TextVectorization` and adds what the RNN needs from its input: an optional maximum
    length (keeping the first or the last tokens), and at least one token per review, so that no
    row is fully masked (an empty review becomes the out-of-vocabulary id; the fused cuDNN kernel
    rejects fully masked rows).

    Args:
        max_tokens: vocabulary size, padding (id 0) and out-of-vocabulary (id 1) included.
        max_length: keep at most this many tokens per review; None keeps all.
        truncation: `"head"` keeps the first `max_length` tokens, `"tail"` the last.
        vocabulary: optional list of words (without the padding and OOV entries) to start with
            instead of calling `adapt`.
        **kwargs: standard `Layer` arguments.

    Example:

    >>> import tensorflow as tf
    >>> encoder = TextEncoder(max_tokens=10)
    >>> encoder.adapt(tf.data.Dataset.from_tensor_slices(["A good film.", "A film", "A"]))
    >>> encoder.get_vocabulary()
    ['', '[UNK]', 'a', 'film', 'good']
    >>> encoder(tf.constant(["a good film", ""])).numpy().tolist()
    [[2, 4, 3], [1, 0, 0]]
    """

    def __init__(
        self,
        max_tokens: int = 10_000,
        max_length: int | None = None,
        truncation: str = "head",
        vocabulary: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if truncation not in ("head", "tail"):
            raise ValueError(
                f"Expected truncation in ('head', 'tail'). Received: truncation={truncation!r}"
            )
        self.max_tokens = max_tokens
        self.max_length = max_length
        self.truncation = truncation
        self.vectorizer = keras.layers.TextVectorization(
            max_tokens=max_tokens,
            standardize=imdb_standardize,
            ragged=True,
            name="vectorizer",
        )
        if vocabulary is not None:
            # Not `TextVectorization(vocabulary=...)`: a vocabulary given to the constructor is
            # left out of the saved assets (Keras expects it in the layer's config, which this
            # layer does not carry), and the reloaded model fails with "Table not initialized".
            # Set afterwards, it is saved and reloaded like an adapted one.
            self.vectorizer.set_vocabulary(vocabulary)

    def adapt(self, data: tf.data.Dataset | tf.Tensor, batch_size: int = 1024) -> None:
        """Builds the vocabulary from a dataset of strings (or a string tensor).

        Args:
            data: raw review strings, unbatched or batched.
            batch_size: batch size used to feed `adapt` when `data` is an unbatched dataset;
                large batches make adapting on 50k reviews about twice as fast as small ones.
        """
        if isinstance(data, tf.data.Dataset) and data.element_spec.shape.rank == 0:
            data = data.batch(batch_size)
        self.vectorizer.adapt(data)

    def build(self, input_shape: Any = None) -> None:
        # The vocabulary lives in the TextVectorization sublayer; nothing to create here.
        self.built = True

    def get_vocabulary(self) -> list[str]:
        """Returns the vocabulary, index 0 being padding and 1 out-of-vocabulary."""
        return [str(word) for word in self.vectorizer.get_vocabulary()]

    def with_options(self, *, max_length: int | None, truncation: str = "head") -> TextEncoder:
        """Returns a new encoder with this one's vocabulary and another length limit."""
        words = self.get_vocabulary()[2:]  # without padding and OOV, which Keras adds back
        return TextEncoder(
            max_tokens=self.max_tokens,
            max_length=max_length,
            truncation=truncation,
            vocabulary=words,
        )

    @property
    def vocabulary_size(self) -> int:
        return int(self.vectorizer.vocabulary_size())

    def encode_ragged(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Returns the token ids of a 1-D batch of strings as a ragged tensor, truncated and with
        at least one id per row."""
        ids = tf.cast(self.vectorizer(tf.reshape(texts, [-1])), "int32")
        if self.max_length is not None:
            ids = (
                ids[:, : self.max_length]
                if self.truncation == "head"
                else ids[:, -self.max_length :]
            )
        empty = tf.equal(ids.row_lengths(), 0)
        # One OOV id for each empty row, nothing for the others; appended row by row.
        filler = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(empty, "int32"))], OOV_ID),
            tf.cast(empty, ids.row_splits.dtype),
        )
        return tf.concat([ids, filler], axis=1)

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        return self.encode_ragged(texts).to_tensor(default_value=PAD_ID)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0] if input_shape else None, self.max_length)

    def compute_output_spec(self, texts: Any) -> keras.KerasTensor:
        batch = texts.shape[0] if texts.shape else None
        return keras.KerasTensor((batch, None), dtype="int32")

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "max_tokens": self.max_tokens,
                "max_length": self.max_length,
                "truncation": self.truncation,
                # Read by no code: Keras quotes this config when it cannot find the class, so a
                # plain keras.models.load_model without imdb_rnn says what to do.
                _LOADING_NOTE_KEY: _LOADING_NOTE,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextEncoder:
        return cls(**{key: value for key, value in config.items() if key != _LOADING_NOTE_KEY})


@keras.saving.register_keras_serializable(package="imdb_rnn")
class KnownIds(keras.layers.Layer):
    """Maps the token ids at or above `vocabulary_size` to the out-of-vocabulary id: an
    embedding over the first `vocabulary_size` words of a larger vocabulary (the trainable
    embedding beside pre-trained word vectors, `imdb_rnn.data.wordvectors`).

    Example:

    >>> KnownIds(4)(keras.ops.convert_to_tensor([[2, 3, 4, 9, 0]])).numpy().tolist()
    [[2, 3, 1, 1, 0]]
    """

    def __init__(self, vocabulary_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        return tf.where(ids >= self.vocabulary_size, tf.ones_like(ids) * OOV_ID, ids)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size}


@keras.saving.register_keras_serializable(package="imdb_rnn")
class MaskedPooling(keras.layers.Layer):
    """Max or mean over time of a sequence, ignoring masked (padding) steps.

    Args:
        mode: `"max"` or `"mean"`.
        **kwargs: standard `Layer` arguments.
    """

    def __init__(self, mode: str = "max", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"Expected mode in ('max', 'mean'). Received: mode={mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, sequences: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        if mask is None:
            mask = tf.ones(tf.shape(sequences)[:2], dtype="bool")
        weights = tf.cast(mask, sequences.dtype)[:, :, None]
        if self.mode == "mean":
            total = tf.reduce_sum(sequences * weights, axis=1)
            return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
        lowest = tf.fill(tf.shape(sequences), tf.constant(-1e9, sequences.dtype))
        return tf.reduce_max(tf.where(weights > 0, sequences, lowest), axis=1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


def gru_step(
    state: tf.Tensor,
    x_t: tf.Tensor,
    keep_t: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    recurrent_bias: tf.Tensor,
) -> tf.Tensor:
    """One step of a reset-after GRU (Keras' default, sigmoid and tanh).

    Args:
        state: the previous state, `(batch, units)`.
        x_t: the step's input already projected by the input kernel and bias,
            `(batch, 3 * units)`, gates in Keras' order (update, reset, candidate).
        keep_t: 1 where the review goes on at this step, 0 past its end, `(batch, 1)`.
        recurrent_kernel: `(units, 3 * units)`.
        recurrent_bias: `(3 * units,)`.

    Returns:
        The new state; past a review's end (`keep_t` 0) the state is carried unchanged.
    """
    inner = tf.matmul(state, recurrent_kernel) + recurrent_bias
    x_z, x_r, x_h = tf.split(x_t, 3, axis=-1)
    inner_z, inner_r, inner_h = tf.split(inner, 3, axis=-1)
    z = tf.sigmoid(x_z + inner_z)
    r = tf.sigmoid(x_r + inner_r)
    candidate = tf.tanh(x_h + r * inner_h)
    new_state = z * state + (1.0 - z) * candidate
    return state + keep_t * (new_state - state)


@keras.saving.register_keras_serializable(package="imdb_rnn")
class FastBidirectional(keras.layers.Bidirectional):
    """`Bidirectional(GRU)` with a faster loop on the CPU.

    Same weights, config and results as `keras.layers.Bidirectional` (concatenated outputs). Where
    a GPU is visible, or the wrapped layer is not a plain GRU, it defers to Keras, which picks the
    fused cuDNN kernel. On the CPU it runs each direction as: the input projections of all time
    steps as one matrix product before the loop (Keras multiplies each step's input inside the
    loop), then the recurrence in the native kernel of `imdb_rnn.native` (one op for the whole
    loop and one for its gradient), or, where that kernel cannot be built, in a TensorFlow
    `scan` loop with the same results. The two directions are separate ops, so TensorFlow runs
    them concurrently on two cores. `benchmarks/gru_kernel.py` measures each way.

    The CPU loop needs right-padded masks (as `TextEncoder` and the pipelines produce); the
    backward direction is computed on each review reversed within its own length.

    Args:
        layer: a `keras.layers.GRU` (reset_after, tanh/sigmoid, no recurrent dropout, for the
            CPU loop; anything else runs through Keras).
        fused: `"auto"` (the loop on CPU, Keras on GPU), `"always"` or `"never"`.
        **kwargs: `keras.layers.Bidirectional` arguments.
    """

    def __init__(self, layer: keras.layers.Layer, fused: str = "auto", **kwargs: Any) -> None:
        super().__init__(layer, **kwargs)
        if fused not in ("auto", "always", "never"):
            raise ValueError(
                f"Expected fused in ('auto', 'always', 'never'). Received: fused={fused!r}"
            )
        self.fused = fused

    def _fusable(self, initial_state: Any) -> bool:
        forward = self.forward_layer
        cell: Any = getattr(forward, "cell", None)
        plain_gru = (
            isinstance(forward, keras.layers.GRU)
            and self.merge_mode == "concat"
            and initial_state is None
            and not forward.stateful
            and cell.reset_after
            and cell.use_bias
            and cell.recurrent_dropout == 0
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
        )
        if self.fused == "never" or not plain_gru:
            return False
        return self.fused == "always" or not devices.gpu_visible()

    def call(
        self,
        sequences: tf.Tensor,
        initial_state: Any = None,
        mask: tf.Tensor | None = None,
        training: bool | None = None,
    ) -> Any:
        if not self._fusable(initial_state):
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )
        return self._cpu_call(sequences, mask, training)

    def _cpu_call(self, sequences: tf.Tensor, mask: tf.Tensor | None, training: bool | None) -> Any:
        dtype = sequences.dtype
        batch, steps = tf.shape(sequences)[0], tf.shape(sequences)[1]
        if mask is None:
            lengths = tf.fill([batch], steps)
        else:
            lengths = tf.reduce_sum(tf.cast(mask, "int32"), axis=1)
        # On a GPU ("always"), the graph loop: the native kernel is CPU-only (see available()).
        use_native = dtype == tf.float32 and native.available()
        reversed_sequences = tf.reverse_sequence(sequences, lengths, seq_axis=1, batch_axis=0)
        states = [
            self._direction(x, cell, lengths, training, use_native)
            for x, cell in (
                (sequences, self.forward_layer.cell),
                (reversed_sequences, self.backward_layer.cell),
            )
        ]  # each (time, batch, units)
        final_forward, final_backward = states[0][-1], states[1][-1]
        if not self.return_sequences:
            output = tf.concat([final_forward, final_backward], axis=-1)
        else:
            outputs_forward = tf.transpose(states[0], [1, 0, 2])
            outputs_backward = tf.reverse_sequence(
                tf.transpose(states[1], [1, 0, 2]), lengths, seq_axis=1, batch_axis=0
            )
            valid = tf.sequence_mask(lengths, steps, dtype=dtype)[:, :, None]
            output = tf.concat([outputs_forward, outputs_backward], axis=-1) * valid
        if self.return_state:
            return output, final_forward, final_backward
        return output

    @staticmethod
    def _direction(
        x: tf.Tensor,
        cell: Any,
        lengths: tf.Tensor,
        training: bool | None,
        use_native: bool,
    ) -> tf.Tensor:
        """Runs one GRU direction over right-padded `x`; returns the states of every step."""
        if training and 0.0 < cell.dropout < 1.0:
            # One dropout mask per review, shared by all steps, as Keras' GRU does.
            x = x * keras.random.dropout(
                tf.ones_like(x[:, :1, :]), cell.dropout, seed=cell.seed_generator
            )
        kernel = tf.convert_to_tensor(cell.kernel)
        recurrent_kernel = tf.convert_to_tensor(cell.recurrent_kernel)
        input_bias, recurrent_bias = tf.unstack(tf.convert_to_tensor(cell.bias))
        # Time-major before the product: the input is narrower than its projection.
        projected = tf.tensordot(tf.transpose(x, [1, 0, 2]), kernel, 1) + input_bias
        if use_native:
            return native.gru_sequence(
                projected, lengths, recurrent_kernel, recurrent_bias, training=training
            )

        def step(state: tf.Tensor, elements: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
            x_t, keep_t = elements
            return gru_step(state, x_t, keep_t, recurrent_kernel, recurrent_bias)

        keep = tf.transpose(tf.sequence_mask(lengths, tf.shape(x)[1], dtype=x.dtype))[
            :, :, None
        ]  # (time, batch, 1)
        initial = tf.zeros(tf.stack([tf.shape(x)[0], cell.units]), dtype=x.dtype)
        return tf.scan(step, (projected, keep), initializer=initial, parallel_iterations=32)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fused": self.fused}


def recurrent_stack(
    sequences: keras.KerasTensor,
    *,
    cell: str = "gru",
    rnn_units: int = 64,
    num_rnn_layers: int = 1,
    pooling: str = "final",
    dropout: float = 0.0,
) -> keras.KerasTensor:
    """Applies `num_rnn_layers` stacked `Bidirectional` recurrent layers and pools over time.

    The layers keep the settings under which Keras runs the fused cuDNN kernel on a GPU
    (default activations, `reset_after=True`, no recurrent dropout).

    Args:
        sequences: masked embeddings, shape `(batch, time, features)`.
        cell: `"gru"` or `"lstm"`.
        rnn_units: units per direction.
        num_rnn_layers: number of stacked bidirectional layers.
        pooling: `"final"` (concatenated final states of both directions), `"max"`, `"mean"`
            or `"final_max_mean"`.
        dropout: input dropout of every recurrent layer.

    Returns:
        A tensor of shape `(batch, features)`.
    """
    rnn_class = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
    # FastBidirectional is Bidirectional with a faster CPU loop for GRUs (cuDNN on a GPU).
    wrapper = FastBidirectional if cell == "gru" else keras.layers.Bidirectional
    x = sequences
    for index in range(num_rnn_layers):
        last = index == num_rnn_layers - 1
        if last and pooling == "final":
            return wrapper(
                rnn_class(rnn_units, dropout=dropout), name=f"bidirectional_{cell}_{index}"
            )(x)
        if last and pooling == "final_max_mean":
            outputs = wrapper(
                rnn_class(rnn_units, dropout=dropout, return_sequences=True, return_state=True),
                name=f"bidirectional_{cell}_{index}",
            )(x)
            x, states = outputs[0], outputs[1:]
            # GRU returns one state per direction, LSTM two (h, c): keep the h of each.
            finals = [states[0], states[len(states) // 2]]
            pooled = [
                MaskedPooling("max", name="max_pool")(x),
                MaskedPooling("mean", name="mean_pool")(x),
            ]
            return keras.layers.Concatenate(name="pooled")([*finals, *pooled])
        x = wrapper(
            rnn_class(rnn_units, dropout=dropout, return_sequences=True),
            name=f"bidirectional_{cell}_{index}",
        )(x)
    return MaskedPooling(pooling, name=f"{pooling}_pool")(x)


def sublayers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Every layer inside `layer`, depth first, through Keras' public attributes: the `layers`
    of a model, the two directions of a `Bidirectional`, the `layer` of any other wrapper.

    Args:
        layer: a model or layer; it is not yielded itself.

    Yields:
        Each sublayer once, parents before their children.

    Example:

    >>> inner = keras.Sequential([keras.layers.Bidirectional(keras.layers.GRU(2))])
    >>> [type(found).__name__ for found in sublayers(keras.Sequential([inner]))]
    ['Sequential', 'Bidirectional', 'GRU', 'GRU']
    """
    seen: set[int] = set()

    def walk(parent: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
        if isinstance(parent, keras.layers.Bidirectional):
            children = [parent.forward_layer, parent.backward_layer]
        elif isinstance(parent, keras.layers.Wrapper):
            children = [parent.layer]
        else:
            children = list(getattr(parent, "layers", None) or [])
        for child in children:
            if id(child) not in seen:
                seen.add(id(child))
                yield child
                yield from walk(child)

    yield from walk(layer)
