"""The decision saved with a model: the two-class threshold tuned by `imdb-rnn eval
--tune-threshold`, and the temperature fitted by `eval --calibrate`, in `decision.json` beside
`model.keras`. `imdb_rnn.load` / `predict`, `serve`, the SavedModel export and the model card
use it; a model without the file cuts at 0.5 with temperature 1.

Example:

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> read_decision(folder)
Decision(threshold=None, temperature=1.0, metric=None, split=None, value=None)
>>> _ = write_decision(folder, Decision(threshold=0.3, metric="f1", split="valid", value=0.9))
>>> read_decision(folder).threshold
0.3
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdb_rnn.errors import InputError, ModelFileError
from imdb_rnn.files import write_json
from imdb_rnn.modeldir import read_json

__all__ = ["DECISION_FILE", "Decision", "read_decision", "write_decision"]

#: The decision's file in a model directory.
DECISION_FILE = "decision.json"


@dataclass(frozen=True)
class Decision:
    """How a model's probabilities become answers.

    Attributes:
        threshold: two classes: the second class is predicted when its probability is at
            least this. Default None: 0.5.
        temperature: logits are divided by this before the softmax / sigmoid. Default 1.0.
        metric: what the threshold maximised (`"f1"`, ...). Default None.
        split: the split it was tuned on (`"valid"`, `"test file"`, ...). Default None.
        value: the metric's value there. Default None.
    """

    threshold: float | None = None
    temperature: float = 1.0
    metric: str | None = None
    split: str | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not (
            isinstance(self.threshold, int | float) and 0 <= self.threshold <= 1
        ):
            raise ValueError(
                f"Expected threshold in [0, 1] or None. Received: threshold={self.threshold!r}"
            )
        temperature = self.temperature
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not math.isfinite(temperature)
            or temperature <= 0
        ):
            raise ValueError(f"Expected temperature > 0. Received: temperature={temperature!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_decision(directory: str | os.PathLike[str]) -> Decision:
    """The decision saved in a model directory, or the default one when there is none.

    Raises:
        ModelFileError: if `decision.json` is there but not a valid decision.
    """
    path = Path(directory) / DECISION_FILE
    if not path.exists():
        return Decision()
    try:
        values = read_json(path, what="The decision file")
        known = {field.name for field in dataclasses.fields(Decision)}
        if not isinstance(values, dict) or set(values) - known:
            raise ValueError(f"expected an object with the keys {sorted(known)}")
        return Decision(**values)
    except (ValueError, TypeError, InputError, RecursionError) as error:
        raise ModelFileError(f"{path} is not a valid decision ({error}).") from None


def write_decision(directory: str | os.PathLike[str], decision: Decision) -> Path:
    """Writes `decision.json` into a model directory (atomically) and returns its path."""
    path = Path(directory) / DECISION_FILE
    write_json(path, decision.to_dict())
    return path
