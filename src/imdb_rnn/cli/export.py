"""`imdb-rnn export`: export a model as a SavedModel (`imdb_rnn.deploy.export.export_saved_model`)
or as TensorFlow Lite (`imdb_rnn.deploy.tflite.export_tflite`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from imdb_rnn.cli._errors import EXIT_MODEL, EXIT_USAGE, fail
from imdb_rnn.cli._inputs import refuse_early
from imdb_rnn.cli._options import JsonOption, ModelDirArgument
from imdb_rnn.cli._quiet import quiet_tensorflow, stderr_descriptor_silenced
from imdb_rnn.cli._render import markup, print_json, stderr

__all__ = ["export_model"]


def export_model(
    model_dir: ModelDirArgument,
    out_dir: Annotated[
        Path, typer.Argument(help="SavedModel directory to create (for TF Serving: NAME/1).")
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT_DIR if it exists.")
    ] = False,
    export_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="saved_model (strings in, for TF Serving: OUT_DIR = NAME/1) or tflite "
            "(TensorFlow Lite, built-in ops: token ids in, plus vocabulary.txt).",
        ),
    ] = "saved_model",
    sequence_length: Annotated[
        int | None,
        typer.Option(
            help="tflite: token positions of the input. [default: the model's max_length, "
            "else 256]",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Export a model as a TensorFlow SavedModel for serving: raw review strings in,
    probabilities out, no imdb-rnn needed to load it (or, with --format tflite, as a
    TensorFlow Lite model of the token-id classifier with its vocabulary file).

    The 'serving_default' signature takes 'text' (a batch of strings) and returns 'probability'
    (of a positive review) and 'logit'; load it with
    tf.saved_model.load(OUT_DIR).signatures['serving_default'] or TensorFlow Serving. Example:

        imdb-rnn export runs/default serving/imdb_rnn/1
    """
    if export_format not in ("saved_model", "tflite"):
        fail(f"--format must be saved_model or tflite (got {export_format!r}).", EXIT_USAGE)
    if sequence_length is not None and (export_format != "tflite" or sequence_length < 1):
        fail("--sequence-length takes a positive number, with --format tflite.", EXIT_USAGE)
    if out_dir.exists() and not overwrite:
        fail(
            f"{out_dir} already exists; pass --overwrite to replace it or choose another OUT_DIR.",
            EXIT_USAGE,
        )
    refuse_early(model_dir=model_dir)
    quiet_tensorflow()
    console = stderr()
    if export_format == "tflite":
        _export_tflite(model_dir, out_dir, sequence_length, overwrite=overwrite, as_json=as_json)
        return
    from imdb_rnn.deploy.export import export_saved_model

    if not as_json:
        console.print("[dim]»[/] Exporting", highlight=False)
    export_saved_model(model_dir, out_dir, overwrite=overwrite)
    outputs = {"probability": "float32 [batch]", "logit": "float32 [batch]"}
    labels_file = out_dir / "assets.extra" / "labels.json"
    if labels_file.is_file() and len(json.loads(labels_file.read_text(encoding="utf-8"))) > 2:
        outputs = {
            "label": "string [batch]",
            "score": "float32 [batch]",
            "scores": "float32 [batch, classes]",
            "logits": "float32 [batch, classes]",
        }
    summary = {
        "output": str(out_dir),
        "signature": "serving_default",
        "inputs": {"text": "string [batch]"},
        "outputs": outputs,
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"Exported to [bold]{markup(out_dir)}[/]: signature 'serving_default', "
        f"text (strings) -> {', '.join(outputs)}.",
        highlight=False,
    )


def _export_tflite(
    model_dir: Path, out_dir: Path, sequence_length: int | None, *, overwrite: bool, as_json: bool
) -> None:
    """`export --format tflite`: the TensorFlow Lite model, its vocabulary and its config."""
    console = stderr()
    from imdb_rnn.deploy.tflite import CONFIG_FILE, export_tflite

    if not as_json:
        console.print("[dim]»[/] Exporting to TensorFlow Lite", highlight=False)
    from imdb_rnn.errors import ImdbRnnError

    try:
        # The interpreter's C++ code announces its XNNPACK delegate on stderr.
        with stderr_descriptor_silenced():
            export_tflite(model_dir, out_dir, sequence_length=sequence_length, overwrite=overwrite)
    except ImdbRnnError:
        raise  # ExportTargetError: its own exit code
    except ValueError as error:  # a plain ValueError: a model TensorFlow Lite cannot take
        fail(str(error), EXIT_MODEL)
    config = json.loads((out_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    output = config["output"]
    output_shape = ", ".join(["batch", *(str(size) for size in output["shape"][1:])])
    summary = {
        "output": str(out_dir),
        "format": "tflite",
        "files": sorted(path.name for path in out_dir.iterdir()),
        "inputs": {"token_ids": f"int32 [batch, {config['sequence_length']}]"},
        "outputs": {output["name"]: f"float32 [{output_shape}]"},
        "labels": config["labels"],
    }
    if as_json:
        print_json(summary)
        return
    shapes = markup(
        f"token_ids int32 [batch, {config['sequence_length']}] -> {output['name']} "
        f"float32 [{output_shape}]"
    )
    console.print(
        f"Exported to [bold]{markup(out_dir)}[/]: model.tflite ({shapes}), vocabulary.txt, "
        "tflite_config.json.",
        highlight=False,
        soft_wrap=True,
    )
