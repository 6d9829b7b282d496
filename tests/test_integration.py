"""Integration test on the real IMDB archive (skipped where it is absent).

Finds the data through IMDB_RNN_DATA or ../shared/data/imdb/aclImdb_v1.tar.gz.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import real_data_path
from imdb_rnn.config import get_preset
from imdb_rnn.data.imdb import load_imdb
from imdb_rnn.data.splits import ImdbSplits
from imdb_rnn.training.trainer import Trainer

DATA = real_data_path()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_data,
    pytest.mark.skipif(DATA is None, reason="real aclImdb archive not found (set IMDB_RNN_DATA)"),
]

REVIEWS = [
    "One of the best films I have seen in years. Wonderful acting and a moving story.",
    "A complete waste of time. The plot is dull and the acting is terrible.",
    "",
    "It was fine, I guess.\x85 Nothing special.",
]


def test_real_data_train_save_reload_predict(tmp_path):
    """Vocabulary on all 50,000 real unlabelled reviews, one epoch on 2,000 reviews, then a reload
    in a new process predicts exactly as before."""
    full = load_imdb(DATA)
    splits = ImdbSplits(
        train=full.train.take(2000),
        valid=full.valid.take(500),
        test=full.test.take(2000),
        unsupervised=full.unsupervised,
        sizes={
            "train": 2000,
            "valid": 500,
            "test": 2000,
            "unsupervised": full.sizes["unsupervised"],
        },
        source=full.source,
    )
    config = get_preset("default").replace(
        data={"batch_size": 16, "max_length": 200},
        model={"pooling": "final_max_mean", "word_dropout": 0.0},
        # One plain epoch: the default's adversarial training learns more slowly at first.
        training={
            "epochs": 1,
            "min_steps": 0,
            "learning_rate": 2e-3,
            "early_stopping_patience": None,
            "adversarial_epsilon": 0.0,
            "pseudo_label_threshold": 0.0,
        },
    )
    trainer = Trainer(config)
    trainer.fit(splits)
    assert len(trainer.encoder.get_vocabulary()) == config.model.max_tokens
    result = trainer.evaluate(splits.test)
    assert result.examples == 2000
    assert result.accuracy > 0.6, result
    output = trainer.save(tmp_path / "real")

    before = Trainer.load(output).predict_proba(REVIEWS)
    script = textwrap.dedent(
        f"""
        import json, sys
        from imdb_rnn.training.trainer import Trainer
        reviews = json.loads(sys.stdin.read())
        print(json.dumps(Trainer.load({str(output)!r}).predict_proba(reviews).tolist()))
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(REVIEWS),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    after = np.array(json.loads(child.stdout.strip().splitlines()[-1]))
    np.testing.assert_array_equal(before, after)
