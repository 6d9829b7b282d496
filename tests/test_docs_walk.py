"""The docs walk: the commands of README.md, docs/getting-started.md and docs/usage.md run in
order, as a new user would type them, in one folder, on the tiny fixture data.

The commands are read from the pages' ```bash blocks, so the test follows the docs. The docs'
paths are mapped to fixtures written into the folder (`path/to/aclImdb_v1.tar.gz`, `train.csv`,
`../shared/data/trec/*.csv`, ...); every `train` and `pretrain` gets tiny sizes appended (the
last value of an option wins), a TensorFlow Lite export a short sequence. Lines that install
(`pip install`), serve, or need something else than imdb-rnn (TensorBoard, Docker, curl, the
network: `tfds:NAME`) are skipped, and a fast test checks that nothing else is. Every command
that runs must exit with 0, and what its output can show is checked: the files it writes,
its JSON keys, and that a trained IMDB model ranks the pages' positive review above their
negative one.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import TOPIC_WORDS, make_review, topic_rows, write_topic_csv

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/getting-started.md", "docs/usage.md"]

#: A line holding one of these is not run (installing, serving, other programs, the network).
SKIPPED_WORDS = ("pip install", "imdb-rnn serve", "--install-completion", "--show-completion")
#: Programs other than imdb-rnn that the pages name; `export VAR=value` is applied.
OTHER_PROGRAMS = {"python", "python3", "tensorboard", "docker", "curl", "."}

TINY_TRAIN = [
    *("--max-tokens", "50", "--embedding-dim", "8", "--rnn-units", "4", "--dense-units", "4"),
    *("--batch-size", "8", "--learning-rate", "0.01", "--adversarial-epsilon", "0"),
    *("--word-dropout", "0", "--epochs", "6"),
]
TINY_PRETRAIN = [
    *("--max-tokens", "50", "--embedding-dim", "8", "--rnn-units", "4", "--epochs", "1"),
    *("--sequence-length", "16", "--batch-size", "8", "--sampled-classes", "16"),
]
POSITIVE, NEGATIVE = "A moving, beautifully acted film.", "Dull and far too long."


@dataclass
class Step:
    """One imdb-rnn command of a page: its arguments, stdin file, stdout file, `| head -N`."""

    page: str
    line: str
    args: list[str]
    stdin: str | None = None
    stdout: str | None = None
    head: int | None = None
    env: dict[str, str] = field(default_factory=dict)


def page_steps(page: str) -> Iterator[Step | str]:
    """The page's commands in order: a `Step` per imdb-rnn command, or the line itself (a str)
    where it is skipped."""
    text = (ROOT / page).read_text(encoding="utf-8")
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if not tokens:
                continue
            if any(word in line for word in SKIPPED_WORDS) or "tfds:" in line:
                yield line
                continue
            for segment in _split(tokens, "&&"):
                step = _step(page, line, segment)
                yield step if step is not None else line


def _split(tokens: list[str], separator: str) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _step(page: str, line: str, tokens: list[str]) -> Step | None:
    if tokens[0] == "export" and "=" in tokens[1]:
        name, _, value = tokens[1].partition("=")
        return Step(page, line, [], env={name: value})
    stdin = head = stdout = None
    parts = _split(tokens, "|")
    if parts[0][:1] == ["cat"]:
        stdin, parts = parts[0][1], parts[1:]
    if len(parts) == 2 and parts[1][:1] == ["head"]:
        head = int(parts[1][1].lstrip("-")) if len(parts[1]) > 1 else 10
        parts = parts[:1]
    if len(parts) != 1 or parts[0][:1] != ["imdb-rnn"]:
        assert tokens[0] in OTHER_PROGRAMS, f"{page}: unexpected command {line!r}"
        return None
    args = parts[0][1:]
    if ">" in args:
        at = args.index(">")
        args, stdout = args[:at], args[at + 1]
    return Step(page, line, args, stdin=stdin, stdout=stdout, head=head)


def all_steps() -> list[Step | str]:
    return [step for page in PAGES for step in page_steps(page)]


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_docs_commands_are_runnable_and_do_not_collide():
    """Every line of the pages' shell blocks is a command the walk runs or one it skips on
    purpose, and no two `train`, `pretrain` or `export` commands write into the same folder."""
    steps = all_steps()
    run = [step for step in steps if isinstance(step, Step) and step.args]
    assert len(run) >= 40, len(run)
    skipped = [step for step in steps if isinstance(step, str)]
    for line in skipped:
        tokens = shlex.split(line, comments=True)
        assert (
            any(word in line for word in SKIPPED_WORDS)
            or "tfds:" in line
            or tokens[0] in OTHER_PROGRAMS
        ), line
    written: dict[str, str] = {}
    for step in run:
        command = step.args[0]
        if command in ("train", "pretrain") and "--show-config" not in step.args:
            folder = _option(step.args, "--output") or "runs/imdb-rnn"
        elif command == "export":
            folder = step.args[2]
        else:
            continue
        assert folder not in written, f"{step.line!r} writes into {folder}, as {written[folder]!r}"
        written[folder] = step.line


# -- the walk ---------------------------------------------------------------------------------


def _write_fixtures(clone: Path, archive: Path, monkeypatch) -> None:
    """The files the pages name, in the folder the commands run in (and ../shared/)."""
    import random

    from test_packagedvectors import install_fake_glove

    for name in ("aclImdb_v1.tar.gz", "path/to/aclImdb_v1.tar.gz"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(archive, clone / name)
    trec = clone.parent / "shared" / "data" / "trec"
    trec.mkdir(parents=True)
    write_topic_csv(trec / "train.csv", topic_rows(1, 40))
    write_topic_csv(trec / "test.csv", topic_rows(2, 15))
    for name, seed, count in (("train.csv", 3, 40), ("test.csv", 4, 15), ("big.csv", 5, 60)):
        write_topic_csv(clone / name, topic_rows(seed, count))
    (clone / "new.csv").write_text(
        "text\n" + "".join(f"{text}\n" for text, _ in topic_rows(6, 3)), encoding="utf-8"
    )
    (clone / "more.csv").write_text(
        "text\n" + "".join(f"{text}\n" for text, _ in topic_rows(7, 5)), encoding="utf-8"
    )
    for split, seed, count in (("train", 8, 30), ("valid", 9, 6)):
        for number, (text, label) in enumerate(topic_rows(seed, count)):
            path = clone / "corpus" / split / label / f"{number}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    rng = random.Random(10)
    reviews = [(make_review(rng, label), label) for label in ("neg", "pos") for _ in range(40)]
    rng.shuffle(reviews)
    with open(clone / "reviews.jsonl", "w", encoding="utf-8") as out:
        for text, label in reviews:
            out.write(json.dumps({"body": text, "stars": 2 if label == "neg" else 9}) + "\n")
    (clone / "reviews.txt").write_text(
        "".join(f"{text}\n" for text, _ in reviews[:6]), encoding="utf-8"
    )
    # A batch to score with an id column and a blank row (docs/usage.md, predictions keep rows).
    (clone / "reviews.csv").write_text(
        "id,text\n"
        + "".join(f"{number},{text}\n" for number, (text, _) in enumerate(reviews[:5], 1))
        + "6,\n",
        encoding="utf-8",
    )
    words = ["the", "what", "who", "film"] + [
        word for words in TOPIC_WORDS.values() for word in words
    ]
    install_fake_glove(clone.parent / "site", monkeypatch, words=words, dim=6)


def _mapped(step: Step) -> list[str]:
    """The step's arguments with the fixtures' tiny sizes appended."""
    args = list(step.args)
    if args[:1] == ["train"] and "--show-config" not in args:
        args += TINY_TRAIN
    elif args[:1] == ["pretrain"]:
        args += TINY_PRETRAIN
    elif args[:1] == ["export"] and _option(args, "--format") == "tflite":
        args += ["--sequence-length", "16"]
    return args


def _check(step: Step, args: list[str], stdout: str, clone: Path) -> None:
    """What the command's output can show."""
    command = args[0]
    if "--json" in args or _option(args, "--format") == "json":
        document = json.loads(stdout)
        if command == "train":
            assert {"output", "epochs", "history", "valid", "wall_seconds"} <= set(document)
        elif command == "eval":
            assert {"loss", "accuracy", "f1", "confusion", "examples"} <= set(document)
        elif command == "predict":
            # Each row keeps its input's columns (the text under its own column name).
            assert all({"label", "score", "known_words"} <= set(row) for row in document)
    if command == "train" and "--show-config" in args:
        assert "[model]" in stdout and "[training]" in stdout
    elif command == "train":
        folder = clone / (_option(args, "--output") or "runs/imdb-rnn")
        for name in ("model.keras", "config.json", "config.toml", "history.json"):
            assert (folder / name).is_file(), (step.line, name)
        for name in ("metrics.json", "curves.png", "README.md"):
            assert (folder / name).is_file(), (step.line, name)
        assert (folder / "logs").is_dir()
        metrics = json.loads((folder / "metrics.json").read_text())
        if metrics["pseudo_labels"] is not None:  # self-training: the teacher is kept
            assert (folder / "teacher" / "model.keras").is_file()
    elif command == "pretrain":
        assert (clone / _option(args, "--output") / "encoder.json").is_file()
    elif command == "eval" and _option(args, "--confusion-png"):
        assert (clone / _option(args, "--confusion-png")).is_file()
    elif command == "export":
        target = clone / args[2]
        if _option(args, "--format") == "tflite":
            assert (target / "model.tflite").is_file() and (target / "vocabulary.txt").is_file()
        else:
            assert (target / "saved_model.pb").is_file()
    elif command == "vectors":
        assert (clone / args[2]).stat().st_size > 0
    elif command == "predict":
        if _option(args, "--output"):
            assert (clone / _option(args, "--output")).stat().st_size > 0
        if step.head is not None:
            assert all(json.loads(line)["label"] for line in stdout.splitlines())
        if POSITIVE in args and NEGATIVE in args:
            # On 72 made-up reviews and tiny sizes, the pages' two reviews are called right: the
            # default hybrid's n-gram part knows "moving" and "dull" from the fixture's reviews.
            import imdb_rnn

            rows = imdb_rnn.load(clone / args[1]).predict([POSITIVE, NEGATIVE])
            assert rows[0]["probability"] > rows[1]["probability"], (step.line, rows)
            assert [row["label"] for row in rows] == ["pos", "neg"], (step.line, rows)
    elif command == "--version":
        assert stdout.startswith("imdb-rnn ")
    if step.stdout is not None:
        (clone / step.stdout).write_text(stdout, encoding="utf-8")


def _install_a_wheel(line: str, clone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pip install dist/NAME.whl` (a packaged model, docs/usage.md): installed without its
    dependencies (imdb-rnn is here already) into a folder put on `sys.path`, where the
    commands that follow find the model by name. Other skipped lines stay skipped."""
    import importlib
    import subprocess
    import sys

    tokens = shlex.split(line, comments=True)
    wheels = [token for token in tokens if token.endswith(".whl")]
    if tokens[:2] != ["pip", "install"] or not wheels:
        return
    target = clone.parent / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
        + [str(clone / wheel) for wheel in wheels],
        check=True,
    )
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()


@pytest.mark.slow
def test_docs_walk(tmp_path, monkeypatch, imdb_archive):
    """README.md, then docs/getting-started.md, then docs/usage.md, command by command, in one
    folder: each command exits with 0 and writes what the page says."""
    from typer.testing import CliRunner

    from imdb_rnn.cli._app import app

    clone = tmp_path / "clone"
    clone.mkdir()
    _write_fixtures(clone, imdb_archive, monkeypatch)
    monkeypatch.chdir(clone)
    monkeypatch.delenv("IMDB_RNN_DATA", raising=False)
    runner = CliRunner()
    ran = 0
    for step in all_steps():
        if isinstance(step, str):
            _install_a_wheel(step, clone, monkeypatch)
            continue
        for name, value in step.env.items():
            monkeypatch.setenv(name, value)
        if not step.args:
            continue
        args = _mapped(step)
        stdin = (clone / step.stdin).read_bytes() if step.stdin else None
        result = runner.invoke(app, args, input=stdin)
        assert result.exit_code == 0, f"{step.page}: {step.line}\n{result.output[-3000:]}"
        assert "Traceback" not in result.output, step.line
        stdout = result.stdout
        if step.head is not None:
            stdout = "\n".join(stdout.splitlines()[: step.head])
        _check(step, args, stdout, clone)
        ran += 1
    assert ran >= 40
