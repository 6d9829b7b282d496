"""Pre-trained word vectors (GloVe, word2vec or fastText text files) for the classifier.

A data set of a few thousand short texts cannot teach what its rare words mean: an explorer, a
sergeant and a car manufacturer are people and a company; a question hinges on them. Word
vectors trained on a large general corpus carry that knowledge. With `model.word_vectors` set,
the classifier reads each word through two embeddings, concatenated before the recurrent layers:

- its own trainable `embedding` over the `max_tokens` most frequent training words, as without
  vectors (every other word is out-of-vocabulary to it, so it learns what an unseen word is);
- a `word_vectors` embedding started from the file, over those words plus the file's first
  `word_vectors_limit` words (files list the most frequent first), so that a test word never
  seen in training still has a meaning. The vectors are rescaled to a standard deviation of
  `VECTOR_STD`, and fine-tuned unless `word_vectors_trainable` is false.

The vocabulary is saved with the model (both embeddings read the same token ids); the vector
file is needed only to train.

Files: one word a line followed by its numbers, separated by spaces (GloVe's `.txt`, word2vec's
text format and fastText's `.vec`, whose first line `COUNT DIM` is skipped), UTF-8, optionally
gzip-compressed (`.gz`). Words that the model's standardisation would change (upper case,
punctuation) can never be read from a text and are left out.

Example:

    imdb-rnn train --train questions.csv --word-vectors glove.6B.50d.txt --output runs/q
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from imdb_rnn.errors import InputError, WordVectorsError
from imdb_rnn.files import MAX_LINE_BYTES, bounded_lines, open_regular
from imdb_rnn.layers import PUNCTUATION

__all__ = [
    "VECTOR_STD",
    "WordVectors",
    "WordVectorsError",
    "read_word_vectors",
    "vector_dimension",
]

#: Standard deviation the vectors are rescaled to: that of a fresh embedding's weights in
#: magnitude; GloVe's raw vectors are several times larger and slow the recurrent layer down.
VECTOR_STD = 0.1

# A file word a text can never yield: one with a character `layers.imdb_standardize` removes
# (its own pattern) or splits on.
_NOT_A_TOKEN = re.compile(rf"{PUNCTUATION}|\s")


@dataclass(frozen=True)
class WordVectors:
    """Vectors for a vocabulary, read from a file by `read_word_vectors`.

    Attributes:
        vocabulary: the words (without the padding and out-of-vocabulary entries): those asked
            for, in order, then the words the file added.
        matrix: `(len(vocabulary) + 2, dim)` float32 rows for ids 0 (padding), 1 (unknown) and
            each word, rescaled to standard deviation `VECTOR_STD`; zeros where the file has no
            vector.
        found: how many of the words asked for have a vector in the file.
        added: how many words the file added to the vocabulary.
    """

    vocabulary: list[str]
    matrix: np.ndarray
    found: int
    added: int

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        return int(self.matrix.shape[1])

    def to_dict(self, path: str | os.PathLike[str]) -> dict[str, object]:
        """A record for `metrics.json` and the model card: the file, the vectors' width, the
        vocabulary's size and how many of its words have a vector."""
        return {
            "file": os.fspath(path),
            "dim": self.dim,
            "words": len(self.vocabulary),
            "with_vectors": int(np.count_nonzero(self.matrix[2:].any(axis=1))),
        }

    def describe(self, path: str | os.PathLike[str]) -> str:
        """One line for the progress output."""
        record = self.to_dict(path)
        return (
            f"Word vectors ({record['dim']}-d) from {path}: {record['with_vectors']:,} of "
            f"{record['words']:,} vocabulary words ({self.added:,} added from the file)"
        )


def _lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The lines of a word-vector file, read by the input rule (`imdb_rnn.files`): a regular
    file (not /dev/zero, a FIFO, or a link to one), lines bounded, a byte-order mark dropped."""
    try:
        regular = open_regular(path, what=f"The word vectors {os.fspath(path)}")
    except InputError as error:
        raise WordVectorsError(f"{error} Give a GloVe, word2vec or fastText text file.") from None
    except OSError as error:
        raise WordVectorsError(f"Cannot read the word vectors {path}: {error}") from None
    try:
        with regular, gzip.open(regular, "rb") if str(path).endswith(".gz") else regular as raw:
            for line in bounded_lines(raw, what=os.fspath(path), limit=MAX_LINE_BYTES):  # type: ignore[arg-type]
                yield line.decode("utf-8")
    except InputError as error:
        raise WordVectorsError(str(error)) from None
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise WordVectorsError(f"Cannot read the word vectors {path}: {error}") from None


def _records(path: str | os.PathLike[str]) -> Iterator[tuple[int, str, str]]:
    """`(line number, word, the numbers as text)` of each vector line; a word2vec header and
    blank lines are skipped."""
    for number, line in enumerate(_lines(path), start=1):
        word, _, numbers = line.rstrip("\r\n").partition(" ")
        if number == 1 and word.isdigit() and numbers.strip().isdigit():
            continue  # "COUNT DIM" header of word2vec and fastText files
        if word:
            yield number, word, numbers


def _parse(path: str | os.PathLike[str], number: int, numbers: str, dim: int | None) -> np.ndarray:
    try:
        vector = np.array(numbers.split(), dtype=np.float32)
    except ValueError:
        raise WordVectorsError(
            f"Expected numbers after the word on line {number} of {path}."
        ) from None
    if not vector.size or (dim is not None and vector.size != dim) or not np.isfinite(vector).all():
        raise WordVectorsError(
            f"Expected {dim or 'some'} finite numbers after the word on line {number} of {path}. "
            f"Received: {vector.size}"
        )
    return vector


def vector_dimension(path: str | os.PathLike[str]) -> int:
    """The width of the vectors in `path` (read from its first vector line).

    Raises:
        WordVectorsError: if the file cannot be read or holds no vector.
    """
    for number, _, numbers in _records(path):
        return int(_parse(path, number, numbers, None).size)
    raise WordVectorsError(f"Expected word vectors in {path}. Received: no vector line")


def read_word_vectors(
    path: str | os.PathLike[str], vocabulary: Sequence[str], *, limit: int = 0
) -> WordVectors:
    """Reads the vectors of `vocabulary` from `path`, adding the file's first words.

    Args:
        path: a word-vector text file (see the module docstring), optionally `.gz`.
        vocabulary: words (without padding and unknown) the vectors are wanted for.
        limit: the words among the file's first `limit` vector lines that are not in
            `vocabulary` (and that are tokens the model can see) are added after it. Default 0.

    Returns:
        A `WordVectors`.

    Raises:
        WordVectorsError: if the file cannot be read, a line is malformed, the widths differ, or
            no word has a vector.
    """
    words = list(vocabulary)
    index = {word: position for position, word in enumerate(words)}
    vectors: dict[int, np.ndarray] = {}
    dim: int | None = None
    added = 0
    for line, (number, word, numbers) in enumerate(_records(path)):
        position = index.get(word)
        visible = not _NOT_A_TOKEN.search(word) and word == word.lower()
        if position is None and line < limit and visible:
            position = index[word] = len(words)
            words.append(word)
            added += 1
        if position is None or position in vectors:
            continue
        vector = _parse(path, number, numbers, dim)
        dim = vector.size
        vectors[position] = vector
    if dim is None:
        raise WordVectorsError(
            f"Expected vectors for some of the {len(words):,} words in {path}. Received: none"
        )
    matrix = np.zeros((len(words) + 2, dim), dtype=np.float32)
    rows = np.fromiter(vectors, dtype=np.int64) + 2
    matrix[rows] = np.stack(list(vectors.values()))
    scale = float(matrix[rows].std())
    matrix *= VECTOR_STD / max(scale, 1e-12)
    return WordVectors(vocabulary=words, matrix=matrix, found=len(vectors) - added, added=added)
