"""Tests for the validation split held out by film (`valid_split="film"`), on a tiny archive."""

import random

import numpy as np
import pytest

from conftest import build_reviews, real_data_path, write_archive
from imdb_rnn.config import DataConfig
from imdb_rnn.data.imdb import film_holdout, load_imdb
from imdb_rnn.errors import ConfigError, DataError

_FILMS = 12


def _film_of(index: int) -> str:
    return f"http://www.imdb.com/title/tt{index % _FILMS:07d}/usercomments"


def _with_urls(members: dict[str, str], train: int = 40) -> dict[str, str]:
    """Adds urls_{neg,pos}.txt: review i of train/<label> is about film i % 12."""
    out = dict(members)
    for label in ("neg", "pos"):
        out[f"aclImdb/train/urls_{label}.txt"] = "\n".join(_film_of(i) for i in range(train)) + "\n"
    return out


@pytest.fixture(scope="module")
def film_archive(tmp_path_factory):
    return write_archive(
        tmp_path_factory.mktemp("films") / "aclImdb_v1.tar.gz", _with_urls(build_reviews())
    )


def _film_index(members: dict[str, str]) -> dict[str, set[int]]:
    """Review text -> the films of the training reviews with that text."""
    films: dict[str, set[int]] = {}
    for name, text in members.items():
        if "/train/" in name and ("/neg/" in name or "/pos/" in name):
            index = int(name.rsplit("/", 1)[1].split("_")[0])
            films.setdefault(text, set()).add(index % _FILMS)
    return films


def _texts(dataset):
    return [text.decode() for text, _ in dataset.as_numpy_iterator()]


def test_film_split_shares_no_film_with_train(film_archive):
    """No film of the validation reviews has a review in the training split."""
    members = build_reviews()
    films = _film_index(members)
    splits = load_imdb(
        film_archive, splits=["train", "valid"], valid_fraction=0.2, valid_split="film"
    )
    valid_films = set().union(*(films[text] for text in _texts(splits.valid)))
    train_films = set().union(*(films[text] for text in _texts(splits.train)))
    assert valid_films and train_films
    assert not valid_films & train_films
    assert splits.sizes["train"] + splits.sizes["valid"] == 80
    assert splits.sizes["valid"] >= 16  # at least valid_fraction of the reviews


def test_film_split_is_the_same_every_time(film_archive):
    """Two loads give the same validation reviews, in the same order."""
    first = load_imdb(film_archive, splits=["valid"], valid_split="film")
    second = load_imdb(film_archive, splits=["valid"], valid_split="film")
    assert _texts(first.valid) == _texts(second.valid)


def test_film_split_from_a_folder_matches_the_archive(film_archive, tmp_path):
    """An extracted folder reads its urls_*.txt too and yields the archive's split."""
    import tarfile

    with tarfile.open(film_archive) as archive:
        archive.extractall(tmp_path, filter="data")
    from_folder = load_imdb(tmp_path, splits=["valid"], valid_split="film")
    from_archive = load_imdb(film_archive, splits=["valid"], valid_split="film")
    assert _texts(from_folder.valid) == _texts(from_archive.valid)


def test_random_split_is_unchanged_by_the_urls(film_archive, imdb_archive):
    """The default random split ignores the urls files: same splits with and without them."""
    with_urls = load_imdb(film_archive, splits=["train", "valid", "test"])
    without = load_imdb(imdb_archive, splits=["train", "valid", "test"])
    for name in ("train", "valid", "test"):
        assert _texts(with_urls[name]) == _texts(without[name])


def test_film_split_without_urls_is_a_data_error(imdb_archive):
    """An archive without urls_*.txt cannot be split by film, and says so."""
    with pytest.raises(DataError, match=r"urls_neg\.txt"):
        load_imdb(imdb_archive, splits=["valid"], valid_split="film")


def test_film_split_needs_a_local_source():
    """TFDS does not keep films: valid_split='film' fails at once with a hint."""
    with pytest.raises(DataError, match="source="):
        load_imdb("tfds", splits=["valid"], valid_split="film")


def test_unknown_valid_split_is_rejected():
    """load_imdb and DataConfig name the bad valid_split value."""
    with pytest.raises(DataError, match="valid_split='films'"):
        load_imdb("tfds", valid_split="films")
    with pytest.raises(ConfigError, match="valid_split='films'"):
        DataConfig(valid_split="films")


def test_film_holdout_takes_whole_films():
    """Every review of a chosen film is held out, and about `count` reviews in all."""
    rng = random.Random(0)
    films = [f"film{rng.randrange(30)}" for _ in range(500)]
    held = film_holdout(films, 50, seed=1)
    chosen = {film for film, h in zip(films, held, strict=True) if h}
    assert all(h == (film in chosen) for film, h in zip(films, held, strict=True))
    assert 50 <= held.sum() < 50 + max(films.count(f) for f in chosen)


def test_film_holdout_keeps_one_film_for_training():
    """Asking for everything still leaves one film outside the held-out split."""
    held = film_holdout(["a", "a", "b", "c"], 10, seed=0)
    assert 0 < (~held).sum() < 4


@pytest.mark.slow
@pytest.mark.real_data
def test_real_archive_film_split():
    """On the real archive: about 10 % held out, no film shared with training."""
    path = real_data_path()
    if path is None:
        pytest.skip("the real aclImdb archive is not here")
    splits = load_imdb(path, splits=["train", "valid"], valid_split="film")
    assert abs(splits.sizes["valid"] - 2500) < 40
    labels = np.array([label for _, label in splits.valid.as_numpy_iterator()])
    assert 0.4 < labels.mean() < 0.6
