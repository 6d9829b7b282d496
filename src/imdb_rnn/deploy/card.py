"""The model card: a `README.md` in every model directory that says what the model is.

It records the data (source, texts per split, rows skipped), the labels, the metrics on the
validation and test splits (per class for the test split), how to use the model, the run's
config and the versions of imdb-rnn, TensorFlow and Keras that trained it. It is written from
the same `TrainResult` that `metrics.json` holds, so the two always agree.

It starts with YAML front matter in the form of Hugging Face model cards (`library_name`,
`tags`, `datasets`, `metrics`, `pipeline_tag` and a `model-index` of the test and validation
results), so that model hubs and tools read what it is without parsing the Markdown.
"""

from __future__ import annotations

import json
from typing import Any

from imdb_rnn.config import RunConfig
from imdb_rnn.config.toml import config_to_toml

__all__ = ["CARD_FILE", "card_metadata", "model_card"]

#: Name of the model card in a model directory.
CARD_FILE = "README.md"


def _metric_rows(name: str, metrics: dict[str, Any] | None) -> list[str]:
    if metrics is None:
        return []
    return [
        f"| {name} | {metrics['examples']:,} | {metrics['accuracy']:.4f} | "
        f"{metrics.get('macro_f1', 0.0):.4f} | {metrics['loss']:.4f} |"
    ]


def _yaml_string(value: object) -> str:
    # JSON strings are YAML strings: quoted and escaped, whatever the text holds.
    return json.dumps(str(value), ensure_ascii=False)


def _dataset_name(result: dict[str, Any]) -> str:
    source = str(result.get("source") or "")
    if source.startswith("train="):  # your own files: the training file's name
        return source.split(",")[0].removeprefix("train=").strip().rsplit("/", 1)[-1]
    if source.startswith("tfds:") and source != "tfds:imdb_reviews":
        return source.removeprefix("tfds:")
    return "imdb"  # the IMDB archive or folder, or TFDS's imdb_reviews


def card_metadata(result: dict[str, Any], *, name: str) -> str:
    """The model card's YAML front matter (between `---` lines), in the Hugging Face model-card
    form: `library_name`, `tags`, `datasets`, `metrics`, `pipeline_tag`, `model-index`."""
    dataset = _dataset_name(result)
    lines = [
        "---",
        "library_name: imdb-rnn",
        "pipeline_tag: text-classification",
        "tags:",
        "- imdb-rnn",
        "- text-classification",
        "- keras",
        "- tensorflow",
        "datasets:",
        f"- {_yaml_string(dataset)}",
        "metrics:",
        "- accuracy",
        "- f1",
    ]
    results = []
    for split, values in (("test", result.get("test")), ("validation", result.get("valid"))):
        if not values:
            continue
        metrics = [("accuracy", values.get("accuracy")), ("f1", values.get("macro_f1"))]
        if values.get("roc_auc") is not None:
            metrics.append(("roc_auc", values.get("roc_auc")))
        results += [
            "  - task:",
            "      type: text-classification",
            "    dataset:",
            f"      name: {_yaml_string(dataset)}",
            f"      type: {_yaml_string(dataset)}",
            f"      split: {split}",
            "    metrics:",
        ]
        for metric, value in metrics:
            if value is not None:
                results += [f"    - type: {metric}", f"      value: {float(value):.4f}"]
    if results:
        lines += ["model-index:", f"- name: {_yaml_string(name)}", "  results:", *results]
    return "\n".join([*lines, "---"]) + "\n"


def _decision_lines(decision: Any, labels: list[str]) -> list[str]:
    if decision is None or (decision.threshold is None and decision.temperature == 1.0):
        return []
    lines = ["", "## Decision", ""]
    if decision.threshold is not None:
        tuned = (
            f", tuned for {decision.metric} on the {decision.split} ({decision.value:.4f})"
            if decision.metric and decision.value is not None
            else ""
        )
        lines.append(
            f"- `{labels[-1]}` is predicted from a probability of {decision.threshold:g}"
            f"{tuned}; `imdb-rnn predict`, `serve` and the SavedModel export use it "
            "(`decision.json`)."
        )
    if decision.temperature != 1.0:
        lines.append(
            f"- Probabilities are calibrated by temperature scaling: logits divided by "
            f"{decision.temperature:g}."
        )
    return lines


def model_card(
    result: dict[str, Any], config: RunConfig, *, name: str, decision: Any = None
) -> str:
    """Returns the model card (Markdown) of a run.

    Args:
        result: `TrainResult.to_dict()` of the run (what `metrics.json` holds).
        config: the run's config.
        name: the model's name (its directory's name).
        decision: the `inference.decision.Decision` saved with the model (a tuned threshold, a
            temperature), if any. Default None.

    Returns:
        The text of `README.md`.
    """
    labels = list(result.get("label_names") or ["neg", "pos"])
    where = result.get("output") or name
    head = (
        "Dense(1) logit, binary cross-entropy"
        if len(labels) == 2
        else (f"Dense({len(labels)}) logits, sparse categorical cross-entropy")
    )
    model = config.model
    lines = [
        card_metadata(result, name=name),
        f"# {name}",
        "",
        f"A text classifier trained by imdb-rnn: {model.num_rnn_layers} bidirectional "
        f"{model.cell.upper()} layer(s) of {model.rnn_units} units over {model.embedding_dim}-"
        f"dimensional embeddings of a {model.max_tokens:,}-token vocabulary, {model.pooling} "
        f"pooling, {head}. Preset: {config.preset}.",
        "",
        "## Data",
        "",
        f"- Source: {result.get('source') or 'unknown'}",
        "- Texts per split: "
        + ", ".join(f"{split} {count:,}" for split, count in result.get("sizes", {}).items()),
    ]
    bad_rows = result.get("bad_rows") or {}
    if bad_rows:
        reasons = ", ".join(f"{count:,} {reason}" for reason, count in bad_rows.items())
        lines.append(f"- Rows skipped: {sum(bad_rows.values()):,} ({reasons})")
    else:
        lines.append("- Rows skipped: none")
    if result.get("bytes_read"):
        lines.append(f"- Read: {result['bytes_read']:,} bytes")
    pseudo = result.get("pseudo_labels")
    if pseudo:
        lines.append(
            f"- Self-training: the teacher ({pseudo.get('teacher') or 'trained in memory'}) "
            f"labelled {pseudo['added']:,} of {pseudo['unlabelled']:,} unlabelled texts with "
            f"probability >= {pseudo['threshold']:g}; they are part of the training texts above"
        )
    vectors = result.get("word_vectors")
    if vectors:
        lines.append(
            f"- Word vectors: {vectors['dim']}-dimensional, from {vectors['file']}; "
            f"{vectors['with_vectors']:,} of the {vectors['words']:,} vocabulary words have one"
        )
    lines += [
        "",
        "## Labels",
        "",
        "In the order of the model's outputs (`labels.json`): "
        + ", ".join(f"`{label}`" for label in labels)
        + ".",
        "",
        "## Metrics",
        "",
        "| split | texts | accuracy | macro F1 | loss |",
        "| --- | ---: | ---: | ---: | ---: |",
        *_metric_rows("validation", result.get("valid")),
        *_metric_rows("test", result.get("test")),
    ]
    test = result.get("test")
    if test and test.get("per_class"):
        lines += [
            "",
            "Per class, on the test split:",
            "",
            "| class | precision | recall | F1 | support |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {row['label']} | {row['precision']:.4f} | {row['recall']:.4f} | "
            f"{row['f1']:.4f} | {row['support']:,} |"
            for row in test["per_class"]
        ]
    lines += _decision_lines(decision, labels)
    lines += [
        "",
        f"Trained for {result.get('epochs', 0)} epochs (weights of epoch "
        f"{result.get('best_epoch', 0)} kept) in {result.get('train_seconds', 0.0):.0f} s; "
        f"recurrent layers run by: {result.get('rnn_kernel') or 'unknown'}.",
        "",
        "## Use",
        "",
        "```",
        f'imdb-rnn predict {where} "some text"',
        f"imdb-rnn eval {where} --test labelled.csv"
        if result.get("source", "").startswith("train=")
        else f"imdb-rnn eval {where} --data aclImdb_v1.tar.gz",
        "```",
        "",
        "```python",
        "import imdb_rnn",
        "",
        f'classify = imdb_rnn.load("{where}")',
        'classify(["some text"])  # [{"label": ..., "score": ...}]',
        "```",
        "",
        "## Config",
        "",
        "`config.toml`, which `imdb-rnn train --config` reads:",
        "",
        "```toml",
        config_to_toml(config).rstrip("\n"),
        "```",
        "",
        "## Versions",
        "",
    ]
    versions = result.get("versions") or {}
    lines += [f"- {package}: {version}" for package, version in versions.items()]
    return "\n".join(lines) + "\n"
