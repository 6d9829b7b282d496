"""`imdb-rnn presets`."""

from imdb_rnn.cli import app

from .helpers import parsed_json


def test_presets_print_toml_that_train_reads(runner, tmp_path):
    """`presets NAME` prints TOML; `train --config` with it resolves to that preset."""
    listing = runner.invoke(app, ["presets"])
    assert listing.exit_code == 0 and "reference" in listing.stdout and "deep" in listing.stdout
    result = runner.invoke(app, ["presets", "deep"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "run.toml"
    path.write_text(result.stdout, encoding="utf-8")
    shown = parsed_json(
        runner.invoke(app, ["train", "--config", str(path), "--show-config", "--json"])
    )
    from imdb_rnn.config import get_preset

    assert shown == get_preset("deep").to_dict()
