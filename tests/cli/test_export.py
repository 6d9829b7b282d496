"""`imdb-rnn export`."""

from imdb_rnn.cli import app
from imdb_rnn.errors import EXIT_MODEL, EXIT_USAGE

from .helpers import parsed_json


def test_export_command(runner, tmp_path, trained_model_dir):
    """export writes a SavedModel, then refuses to replace it without --overwrite."""
    out = tmp_path / "serving" / "1"
    summary = parsed_json(
        runner.invoke(app, ["export", str(trained_model_dir), str(out), "--json"])
    )
    assert summary["output"] == str(out) and (out / "saved_model.pb").is_file()
    again = runner.invoke(app, ["export", str(trained_model_dir), str(out)])
    assert again.exit_code == EXIT_USAGE and "--overwrite" in again.stderr
    missing = runner.invoke(app, ["export", str(tmp_path / "none"), str(tmp_path / "o")])
    assert missing.exit_code == EXIT_MODEL and "No model directory" in missing.stderr
