"""Tests for imdb_rnn.deploy.serve: TensorFlow Serving's REST API, batching, limits, the page."""

import asyncio
import base64
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient

from imdb_rnn.cli._app import app
from imdb_rnn.deploy import serve as serve_module
from imdb_rnn.deploy.serve import MAX_TEXT_CHARACTERS, ServeOptions, create_app
from imdb_rnn.inference.explain import explain
from imdb_rnn.training.trainer import Trainer
from imdb_rnn.training.workflows import predict

REVIEWS = [
    "A moving, wonderful film.",
    "Awful, boring and a waste of time.",
    "The plot was dull but the cast was brilliant<br /><br />and the story superb!",
    "",
]
PREDICT = "/v1/models/imdb-rnn:predict"
EXPLAIN = "/v1/models/imdb-rnn:explain"


@pytest.fixture(scope="module")
def trainer(trained_model_dir):
    return Trainer.load(trained_model_dir)


@pytest.fixture(scope="module")
def client(trained_model_dir, trainer):
    with TestClient(create_app(trained_model_dir, trainer=trainer)) as client:
        yield client


def test_predict_matches_the_library(client, trained_model_dir):
    """The row format answers, per review, the label and probability `imdb_rnn.predict`
    gives, and its logit."""
    response = client.post(PREDICT, json={"instances": REVIEWS})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = predict(trained_model_dir, REVIEWS)
    assert len(predictions) == len(expected)
    for got, want in zip(predictions, expected, strict=True):
        assert set(got) == {"label", "probability", "logit"}
        assert got["label"] == want["label"]
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-6)
        assert got["probability"] == pytest.approx(1 / (1 + np.exp(-got["logit"])), abs=1e-9)


def test_instances_as_objects_and_b64(client):
    """`{"text": ...}` instances and `{"b64": ...}` strings give the same answers as plain
    strings."""
    plain = client.post(PREDICT, json={"instances": REVIEWS[:2]}).json()
    b64 = base64.b64encode(REVIEWS[1].encode("utf-8")).decode("ascii")
    named = client.post(
        PREDICT, json={"instances": [{"text": REVIEWS[0]}, {"text": {"b64": b64}}]}
    ).json()
    assert named == plain


def test_columnar_format(client):
    """`{"inputs": [...]}` and `{"inputs": {"text": [...]}}` answer `{"outputs": {...}}`
    column by column, with the row format's numbers."""
    rows = client.post(PREDICT, json={"instances": REVIEWS}).json()["predictions"]
    for inputs in (REVIEWS, {"text": REVIEWS}):
        outputs = client.post(PREDICT, json={"inputs": inputs}).json()["outputs"]
        assert outputs["probability"] == [row["probability"] for row in rows]
        assert outputs["logit"] == [row["logit"] for row in rows]


def test_version_path_and_signature_name(client):
    """`/versions/1` and `signature_name: serving_default` are accepted, as in TF Serving."""
    body = {"signature_name": "serving_default", "instances": REVIEWS[:1]}
    response = client.post("/v1/models/imdb-rnn/versions/1:predict", json=body)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "exactly one of"),
        ({"instances": ["a"], "inputs": ["a"]}, "exactly one of"),
        ({"instances": []}, "non-empty list"),
        ({"instances": "a review"}, "non-empty list"),
        ({"instances": [3]}, "instances[0] must be a string"),
        ({"instances": [{"review": "a"}]}, 'the only input is "text"'),
        ({"instances": [{"text": None}]}, "instances[0].text must be a string"),
        ({"inputs": {"words": ["a"]}}, 'the only input is "text"'),
        ({"instances": [{"b64": "not base64!"}]}, "not base64"),
        ({"signature_name": "other", "instances": ["a"]}, 'signature name: "other" not found'),
        (["a review"], "must be a JSON object"),
    ],
)
def test_bad_requests_are_400(client, body, fragment):
    """A malformed request gets 400 and `{"error": ...}` naming what is wrong."""
    response = client.post(PREDICT, json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_invalid_json_is_400(client):
    """A body that is not JSON gets 400 with a JSON error."""
    response = client.post(PREDICT, content=b"{not json", headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_unknown_model_and_version_are_404(client):
    """Another model name or version is 404 in TF Serving's words; an unknown path too."""
    response = client.post("/v1/models/other:predict", json={"instances": ["a"]})
    assert response.status_code == 404
    assert response.json()["error"] == "Servable not found for request: Latest(other)"
    response = client.post("/v1/models/imdb-rnn/versions/2:predict", json={"instances": ["a"]})
    assert response.status_code == 404
    assert client.post("/v1/models/imdb-rnn:classify", json={}).status_code == 404
    assert client.get("/v1/models/other").status_code == 404
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "error" in missing.json()


def test_text_too_long_is_400(client):
    """A review over MAX_TEXT_CHARACTERS is refused with 400, and the server keeps serving."""
    response = client.post(PREDICT, json={"instances": ["a" * (MAX_TEXT_CHARACTERS + 1)]})
    assert response.status_code == 400
    assert "Shorten it" in response.json()["error"]
    assert client.post(PREDICT, json={"instances": ["fine"]}).status_code == 200


def test_body_too_large_is_413(trained_model_dir, trainer):
    """A body over max_body_bytes is refused with 413, whether its length is declared or it
    comes in chunks."""
    options = ServeOptions(max_body_bytes=1000)
    with TestClient(create_app(trained_model_dir, trainer=trainer, options=options)) as client:
        body = json.dumps({"instances": ["great film " * 100]}).encode()
        declared = client.post(PREDICT, content=body)
        assert declared.status_code == 413
        assert "larger than 1,000 bytes" in declared.json()["error"]
        chunked = client.post(PREDICT, content=iter([body[:600], body[600:]]))
        assert chunked.status_code == 413
        assert client.post(PREDICT, json={"instances": ["great"]}).status_code == 200


def test_too_many_instances_is_400(trained_model_dir, trainer):
    """More reviews than max_instances in one request is 400."""
    options = ServeOptions(max_instances=3)
    with TestClient(create_app(trained_model_dir, trainer=trainer, options=options)) as client:
        response = client.post(PREDICT, json={"instances": ["a"] * 4})
        assert response.status_code == 400
        assert "at most 3" in response.json()["error"]


def test_status_metadata_and_health(client):
    """GET /v1/models/NAME reports version 1 AVAILABLE; /metadata the serving signature;
    /healthz is ok."""
    status = client.get("/v1/models/imdb-rnn").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.get("/v1/models/imdb-rnn/versions/1").status_code == 200
    metadata = client.get("/v1/models/imdb-rnn/metadata").json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["text"]["dtype"] == "DT_STRING"
    assert set(signature["outputs"]) == {"label", "probability", "logit"}
    assert client.get("/healthz").json()["status"] == "ok"


def test_explain_matches_predict_explain(client, trainer):
    """The explain endpoint gives `inference.explain`'s word weights, and every token of the
    review as written with the weight of its word."""
    text = "A moving, WONDERFUL film... but the plot was dull."
    response = client.post(EXPLAIN, json={"instances": [text]})
    assert response.status_code == 200, response.text
    (result,) = response.json()["explanations"]
    (expected,) = explain(trainer, [text])
    assert result["label"] == ("pos" if result["probability"] >= 0.5 else "neg")
    assert result["probability"] == pytest.approx(float(trainer.predict_proba([text])[0]))
    assert result["scores"]["pos"] == pytest.approx(result["probability"])
    assert result["score"] == pytest.approx(result["scores"][result["label"]])
    assert result["explained"] == "pos"
    assert [item["word"] for item in result["explanation"]] == [w.word for w in expected.weights]
    assert [item["weight"] for item in result["explanation"]] == pytest.approx(
        [w.weight for w in expected.weights]
    )
    assert [token["text"] for token in result["tokens"]] == text.split()
    weights = {token["text"]: token["weight"] for token in result["tokens"]}
    assert weights["WONDERFUL"] == pytest.approx(expected.weight_of("wonderful"))
    assert weights["dull."] == pytest.approx(expected.weight_of("dull"))


def test_explain_is_limited(client):
    """Explain takes few and not too long reviews (each costs a prediction per distinct word)."""
    response = client.post(EXPLAIN, json={"instances": ["a"] * 9})
    assert response.status_code == 400
    long_review = "word " * (serve_module.MAX_EXPLAIN_CHARACTERS // 5 + 1)
    response = client.post(EXPLAIN, json={"instances": [long_review]})
    assert response.status_code == 400
    assert "explanations take reviews of up to" in response.json()["error"]


def test_page_names_the_model_escaped(trained_model_dir, trainer):
    """GET / is the HTML page, with the model name escaped into it."""
    with TestClient(create_app(trained_model_dir, trainer=trainer)) as client:
        page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'data-model-name="imdb-rnn"' in page.text
    assert ":explain" in page.text


def test_batching_off_gives_the_same_answers(trained_model_dir, trainer, client):
    """With batching off every request is its own model call, with the same numbers."""
    batched = client.post(PREDICT, json={"instances": REVIEWS}).json()
    options = ServeOptions(batching=False)
    with TestClient(create_app(trained_model_dir, trainer=trainer, options=options)) as other:
        assert other.post(PREDICT, json={"instances": REVIEWS}).json() == batched


class _FakeModel:
    """Records the batches it is called with; the logit of a text is its length."""

    def __init__(self):
        self.batches = []

    def logits(self, texts):
        self.batches.append(list(texts))
        return np.array([len(text) for text in texts], dtype=np.float64)

    async def run(self, function, *args):
        return function(*args)


def _run_batcher(model, requests, **options):
    async def main():
        batcher = serve_module._Batcher(model, **options)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.logits(texts) for texts in requests))
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_batcher_joins_requests_that_arrive_together():
    """Requests queued together go to the model as one call, and each gets its own rows back."""
    model = _FakeModel()
    requests = [["a"], ["bb", "ccc"], ["dddd"]]
    results = _run_batcher(model, requests, max_batch_size=64, max_wait=0.05)
    assert model.batches == [["a", "bb", "ccc", "dddd"]]
    assert [result.tolist() for result in results] == [[1.0], [2.0, 3.0], [4.0]]


def test_batcher_caps_the_batch_size():
    """No batch holds more than max_batch_size reviews; a larger request runs alone."""
    model = _FakeModel()
    requests = [["a"]] * 5 + [["b"] * 6] + [["c"]]
    results = _run_batcher(model, requests, max_batch_size=4, max_wait=0.05)
    assert [len(batch) for batch in model.batches] == [4, 1, 6, 1]
    assert sum(len(result) for result in results) == 12


def test_batcher_wait_counts_from_arrival():
    """A request that has already waited max_wait (queued while the model was busy) runs at
    once, not after another max_wait."""
    model = _FakeModel()

    async def main():
        batcher = serve_module._Batcher(model, max_batch_size=64, max_wait=60.0)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        batcher.start()
        batcher._queue.put_nowait((["queued"], future, loop.time() - 61.0))
        try:
            return await asyncio.wait_for(future, timeout=10)
        finally:
            await batcher.stop()

    assert asyncio.run(main()).tolist() == [6.0]


def test_default_batching_runs_a_lone_request_at_once_and_batches_those_that_queue():
    """With the default wait (0), a request that finds the model idle runs alone at once; the
    requests that arrive while that call runs form the next call together."""
    assert ServeOptions().max_wait_ms == 0

    class Gated(_FakeModel):
        def __init__(self):
            super().__init__()
            self.gate = asyncio.Event()

        async def run(self, function, *args):
            await self.gate.wait()  # the model is busy until the test opens the gate
            return function(*args)

    model = Gated()

    async def main():
        batcher = serve_module._Batcher(model, max_batch_size=64, max_wait=0.0)
        batcher.start()
        try:
            first = asyncio.create_task(batcher.logits(["alone"]))
            for _ in range(5):  # the batcher takes it and calls the (busy) model
                await asyncio.sleep(0)
            later = [asyncio.create_task(batcher.logits([text])) for text in ("a", "bb", "ccc")]
            for _ in range(5):
                await asyncio.sleep(0)
            model.gate.set()
            return await asyncio.gather(first, *later)
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert model.batches == [["alone"], ["a", "bb", "ccc"]]
    assert [result.tolist() for result in results] == [[5.0], [1.0], [2.0], [3.0]]


def test_batcher_failure_fails_its_requests_only():
    """A model call that raises fails the requests of its batch; the batcher goes on."""

    class Flaky(_FakeModel):
        def logits(self, texts):
            if "boom" in texts:
                self.batches.append(list(texts))
                raise RuntimeError("boom")
            return super().logits(texts)

    async def main():
        batcher = serve_module._Batcher(Flaky(), max_batch_size=1, max_wait=0)
        batcher.start()
        try:
            return await asyncio.gather(
                batcher.logits(["boom"]), batcher.logits(["ok"]), return_exceptions=True
            )
        finally:
            await batcher.stop()

    failed, answered = asyncio.run(main())
    assert isinstance(failed, RuntimeError)
    assert answered.tolist() == [2.0]


@pytest.mark.parametrize(
    "options",
    [{"model_name": "a/b"}, {"max_batch_size": 0}, {"max_wait_ms": -1}, {"max_body_bytes": 0}],
)
def test_options_are_checked(options):
    """Bad options raise ValueError naming the option."""
    with pytest.raises(ValueError, match=next(iter(options))):
        ServeOptions(**options)


def test_cli_without_the_extra_prints_the_install_hint(monkeypatch, trained_model_dir):
    """Without starlette/uvicorn, `imdb-rnn serve` says how to install them, in one line."""
    monkeypatch.setattr(serve_module, "missing_dependency", lambda: serve_module._INSTALL_HINT)
    result = CliRunner().invoke(app, ["serve", str(trained_model_dir)])
    assert result.exit_code == 2
    assert 'pip install "imdb-rnn[serve]"' in result.stderr
    assert "Traceback" not in result.output


def test_cli_port_in_use_is_a_clear_error(trained_model_dir):
    """A port that is taken gives a one-line error and exit code 5, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", str(trained_model_dir), "--port", str(port)])
    assert result.exit_code == 5, result.output
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr


def test_cli_missing_model_is_a_clear_error(tmp_path):
    """A directory without a model gives exit code 4."""
    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 4
    assert "model.keras" in result.stderr


@pytest.mark.slow
def test_served_probability_equals_imdb_rnn_predict(trained_model_dir):
    """`imdb-rnn serve` in its own process answers a curl-style request with the probability
    that `imdb-rnn predict --json` prints."""
    review = "A moving film."
    process = subprocess.Popen(
        [sys.executable, "-m", "imdb_rnn", "serve", str(trained_model_dir), "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = _wait_for_url(process)
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            f"{url}/v1/models/imdb-rnn:predict",
            data=json.dumps({"instances": [review]}).encode(),
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = json.load(response)["predictions"][0]["probability"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    result = CliRunner().invoke(app, ["predict", str(trained_model_dir), review, "--json"])
    assert result.exit_code == 0, result.output
    assert served == pytest.approx(json.loads(result.stdout)[0]["probability"], abs=1e-6)


def _wait_for_url(process: subprocess.Popen) -> str:
    """Reads the server's stderr until it says where it listens."""
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("Serving "):
            return line.split(" on ", 1)[1].split(" ", 1)[0]
    raise AssertionError("the server stopped before listening:\n" + "".join(lines))


def test_page_file_is_package_data():
    """The page ships inside the package (no build step)."""
    assert Path(serve_module.page_path()).is_file()


# -- a model of three classes -------------------------------------------------------------------

TOPIC_TEXTS = ["The cat and the dog.", "Red and blue and green.", "One, two, three.", "Hello."]


@pytest.fixture(scope="module")
def topic_client(topic_model_dir):
    with TestClient(create_app(topic_model_dir)) as client:
        yield client


@pytest.mark.slow
def test_three_classes_predict_matches_imdb_rnn_predict(topic_client, topic_model_dir):
    """A three-class model answers, per text, the label, score and every class's score that
    `imdb-rnn predict --json` gives, and its logits, as its SavedModel signature does."""
    import imdb_rnn

    response = topic_client.post(PREDICT, json={"instances": TOPIC_TEXTS})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    predictor = imdb_rnn.load(topic_model_dir)
    expected = predictor.predict(TOPIC_TEXTS)
    for got, want in zip(predictions, expected, strict=True):
        assert set(got) == {"label", "score", "scores", "logits"}
        assert got["label"] == want["label"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-6)
        assert got["scores"] == pytest.approx([want["scores"][n] for n in predictor.labels])
        assert len(got["logits"]) == 3
    assert {row["label"] for row in predictions[:3]} == {"animal", "colour", "number"}


def test_three_classes_columnar_format(topic_client):
    """The columnar format answers the same outputs as columns."""
    rows = topic_client.post(PREDICT, json={"instances": TOPIC_TEXTS}).json()["predictions"]
    response = topic_client.post(PREDICT, json={"inputs": TOPIC_TEXTS})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert outputs["label"] == [row["label"] for row in rows]
    assert outputs["scores"] == [row["scores"] for row in rows]


def test_three_classes_explain_matches_predict_explain(topic_client, topic_model_dir):
    """Explain on a three-class model gives the keys and weights of `imdb-rnn predict
    --explain --json` (weights move the predicted class), and the review's tokens."""
    from imdb_rnn.inference.explain import explained_rows

    text = TOPIC_TEXTS[0]
    response = topic_client.post(EXPLAIN, json={"instances": [text]})
    assert response.status_code == 200, response.text
    (result,) = response.json()["explanations"]
    (expected,) = explained_rows(Trainer.load(topic_model_dir), [text])
    assert "probability" not in result
    assert result["label"] == expected["label"] == expected["explained"] == result["explained"]
    assert result["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert result["scores"] == pytest.approx(expected["scores"], abs=1e-6)
    assert [item["word"] for item in result["explanation"]] == [
        item["word"] for item in expected["explanation"]
    ]
    assert [item["weight"] for item in result["explanation"]] == pytest.approx(
        [item["weight"] for item in expected["explanation"]], abs=1e-6
    )
    assert [token["text"] for token in result["tokens"]] == text.split()


def test_three_classes_metadata_and_health(topic_client):
    """The metadata describes the multi-class signature; /healthz names the classes."""
    metadata = topic_client.get("/v1/models/imdb-rnn/metadata").json()
    outputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    assert set(outputs) == {"label", "score", "scores", "logits"}
    assert outputs["label"]["dtype"] == "DT_STRING"
    assert [dim["size"] for dim in outputs["scores"]["tensor_shape"]["dim"]] == ["-1", "3"]
    assert topic_client.get("/healthz").json()["labels"] == ["animal", "colour", "number"]


def test_prediction_outputs_of_two_and_three_classes():
    """Two classes: label, probability and logit; more: label, score, scores and logits, with
    the label the most probable class."""
    two = serve_module.prediction_outputs(np.array([0.0, 2.0]), ("neg", "pos"))
    assert two["label"] == ["pos", "pos"]
    assert two["probability"] == pytest.approx([0.5, 1 / (1 + np.exp(-2.0))])
    assert two["logit"] == [0.0, 2.0]
    three = serve_module.prediction_outputs(np.array([[0.0, 1.0, 0.0], [3.0, 0.0, 0.0]]), "abc")
    assert three["label"] == ["b", "a"]
    assert three["score"][0] == pytest.approx(np.e / (np.e + 2))
    assert [sum(row) for row in three["scores"]] == pytest.approx([1.0, 1.0])


# -- JSON ----------------------------------------------------------------------------------------


def test_json_codec_without_orjson_gives_the_same_bytes(monkeypatch):
    """Without orjson the standard library's codec writes the same compact UTF-8 JSON and
    refuses NaN."""
    pytest.importorskip("orjson")
    value = {"predictions": [{"probability": 0.123456789, "logit": -1.5, "label": "café"}]}
    fast_loads, fast_dumps = serve_module.json_codec()
    monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson now fails
    loads, dumps = serve_module.json_codec()
    assert dumps is not fast_dumps
    assert dumps(value) == fast_dumps(value)
    assert loads(b'{"a": [1, "\\u00e9"]}') == fast_loads(b'{"a": [1, "\\u00e9"]}')
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def test_server_works_without_orjson(monkeypatch, trained_model_dir, trainer, client):
    """The app answers the same without orjson installed."""
    monkeypatch.setitem(sys.modules, "orjson", None)
    expected = client.post(PREDICT, json={"instances": REVIEWS}).json()
    with TestClient(create_app(trained_model_dir, trainer=trainer)) as plain:
        response = plain.post(PREDICT, json={"instances": REVIEWS})
        assert response.json() == expected
        assert plain.post(PREDICT, content=b"{").status_code == 400
