"""An HTTP server for a trained model that speaks TensorFlow Serving's REST API, with a page to
try it.

`create_app` returns an ASGI application (Starlette); `run_server` serves it with uvicorn. Both
need the optional `serve` extra: `pip install "imdb-rnn[serve]"`.

Endpoints (NAME is the model name, `imdb-rnn` by default; `/versions/1` may follow it):

- `POST /v1/models/NAME:predict`: TensorFlow Serving's predict API. The row format
  `{"instances": ["text", {"text": "..."}, ...]}` answers `{"predictions": [{"label": l,
  "probability": p, "logit": l}, ...]}` (the label at the threshold saved with the model, else
  0.5); the columnar format `{"inputs": ["text", ...]}` (or `{"inputs": {"text": [...]}}`)
  answers `{"outputs": {"label": [...], "probability": [...], "logit": [...]}}`: the same shapes as
  TensorFlow Serving running the SavedModel of `imdb-rnn export`, so clients do not change.
  A model of more than two classes answers, as its SavedModel does, `{"label", "score",
  "scores", "logits"}` per review (`scores`: every class's probability, in the order of the
  model's `labels.json`). A string may also be given as `{"b64": "..."}` (base64 of its UTF-8
  bytes).
- `POST /v1/models/NAME:explain`: the same inputs; answers `{"explanations": [...]}`, one
  `{"label", "probability" (two classes only), "score", "scores", "explained", "explanation",
  "tokens"}` per review, computed as `imdb-rnn predict --explain --json` computes them (see
  `imdb_rnn.inference.explain`).
- `GET /v1/models/NAME`: the model's status; `GET /v1/models/NAME/metadata`: its signature.
- `GET /healthz`: `{"status": "ok"}` once the model is loaded.
- `GET /`: a page to type a review and see the label, the score and each word coloured by its
  weight.

Errors are `{"error": "..."}`: 400 for a bad request, 404 for an unknown model or path, 413 for a
body over `max_body_bytes`. Requests that arrive together are batched into one model call (as
TensorFlow Serving's batching does): the first waits at most `max_wait_ms` (default 0) for
others, up to `max_batch_size` reviews, and those that arrive while the model runs form the next
batch. The model is loaded once and runs on one thread.

Example (tests use Starlette's `TestClient`; `imdb-rnn serve` runs it with uvicorn):

    from starlette.testclient import TestClient
    from imdb_rnn.deploy.serve import create_app

    with TestClient(create_app("runs/default")) as client:
        client.post("/v1/models/imdb-rnn:predict", json={"instances": ["A moving film."]})
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import html
import json
import math
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imdb_rnn.errors import RequestError
from imdb_rnn.inference.predictions import (
    class_probabilities,
    predicted_indices,
    prediction_of,
    two_classes,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from imdb_rnn.inference.classifier import Classifier

__all__ = [
    "DEFAULT_MODEL_NAME",
    "MAX_EXPLAIN_CHARACTERS",
    "MAX_TEXT_CHARACTERS",
    "RequestError",
    "ServeOptions",
    "bind_socket",
    "class_probabilities",
    "create_app",
    "listening_url",
    "missing_dependency",
    "page_path",
    "parse_predict_request",
    "predicted_indices",
    "prediction_outputs",
    "run_server",
    "token_weights",
]

#: The name the model is served under unless told otherwise.
DEFAULT_MODEL_NAME = "imdb-rnn"
#: Longer reviews are refused with 400 (the longest IMDB review has about 14,000 characters).
MAX_TEXT_CHARACTERS = 100_000
#: Longer reviews are not explained (400): each distinct word costs one more prediction.
MAX_EXPLAIN_CHARACTERS = 20_000
#: The only version served (TensorFlow Serving numbers versions; a model directory has one).
MODEL_VERSION = "1"

_SIGNATURE_NAME = "serving_default"
_INPUT_NAME = "text"
_INSTALL_HINT = 'imdb-rnn serve needs its optional dependencies: pip install "imdb-rnn[serve]"'
# NAME, an optional /versions/N (or /labels/L, which is refused), then :verb or /metadata.
_MODEL_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<rest>:[a-z]+|/metadata)?$"
)


def missing_dependency() -> str | None:
    """Returns a one-line install hint if the `serve` extra (starlette, uvicorn) is missing,
    else None."""
    import importlib.util

    for module in ("starlette", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            return _INSTALL_HINT
    return None


@dataclass(frozen=True)
class ServeOptions:
    """How the server batches and what it accepts.

    Attributes:
        model_name: the NAME in `/v1/models/NAME`. Default `"imdb-rnn"`.
        batching: batch requests that arrive together into one model call. Default True.
        max_batch_size: most reviews in one batched model call (a larger request still runs,
            alone). Default 64.
        max_wait_ms: how long the first request of a batch waits for others, in milliseconds.
            Default 0: a request that finds the model idle runs at once, and those that arrive
            while it runs form the next batch (TensorFlow Serving's batching guide advises
            starting from 0 on CPUs; a wait adds up to its length to requests at low load, and
            at 64 clients batches were about as large without it: docs/performance.md).
        max_body_bytes: larger request bodies are refused with 413. Default 1 MiB.
        max_instances: most reviews in one request (400 beyond). Default 1024.
        max_explain_instances: most reviews in one explain request (each costs one prediction
            per distinct word). Default 8.
    """

    model_name: str = DEFAULT_MODEL_NAME
    batching: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 0.0
    max_body_bytes: int = 1 << 20
    max_instances: int = 1024
    max_explain_instances: int = 8

    def __post_init__(self) -> None:
        if not self.model_name or not re.fullmatch(r"[A-Za-z0-9._-]+", self.model_name):
            raise ValueError(
                "Expected model_name made of letters, digits, '.', '_' and '-'. "
                f"Received: model_name={self.model_name!r}"
            )
        for name in ("max_batch_size", "max_body_bytes", "max_instances", "max_explain_instances"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected {name} to be a positive integer. Received: {value!r}")
        if not (0 <= self.max_wait_ms <= 10_000) or math.isnan(self.max_wait_ms):
            raise ValueError(
                f"Expected max_wait_ms in [0, 10000]. Received: max_wait_ms={self.max_wait_ms}"
            )


# -- the model, on one thread --------------------------------------------------------------------


# (reviews, the future that gets their logits, arrival time on the event loop's clock)
_Pending = tuple[list[str], "asyncio.Future[np.ndarray]", float]


class _Model:
    """The loaded model and the one thread that runs it (TensorFlow calls never block the event
    loop, and one call runs at a time).

    A call is one traced TensorFlow function from strings to logits (the text model: encoder
    and classifier), without `Classifier.predict_logits`' per-call input pipeline, which costs
    more than the model on a few short reviews. The numbers are the same: one batch padded to
    its longest review, as `predict` pads its length-sorted batches.
    """

    def __init__(self, classifier: Classifier) -> None:
        import tensorflow as tf

        self.classifier = classifier
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imdb-rnn-model")
        self.calls = 0
        text_model = classifier.text_model
        # Two classes: one logit per review, `[batch]`; more: `[batch, classes]`.
        shape = [-1] if two_classes(classifier.label_names) else [-1, classifier.num_classes]
        self._forward = tf.function(
            lambda texts: tf.reshape(text_model(texts, training=False), shape),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
        self._shape = shape
        self._constant = tf.constant

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        logits = self._forward(self._constant(list(texts), dtype="string"))
        return np.asarray(logits, dtype=np.float64).reshape(self._shape)

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)


class _Batcher:
    """Gathers the reviews of requests that arrive together into one model call.

    As in TensorFlow Serving, a batch closes when it holds `max_batch_size` reviews or when its
    first request has waited `max_wait` seconds, counted from that request's arrival: requests
    that queued while the model was busy go into the next call at once.
    """

    def __init__(self, model: _Model, *, max_batch_size: int, max_wait: float) -> None:
        self._model = model
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def logits(self, texts: list[str]) -> np.ndarray:
        if self._queue is None:
            raise RuntimeError("The batcher is not running: serve the app with its lifespan.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        await self._queue.put((texts, future, loop.time()))
        return await future

    async def _loop(self) -> None:
        assert self._queue is not None
        queue, loop = self._queue, asyncio.get_running_loop()
        waiting: _Pending | None = None  # took from the queue, for the next batch
        while True:
            first = waiting if waiting is not None else await queue.get()
            waiting = None
            batch, size = [first], len(first[0])
            deadline = first[2] + self._max_wait
            while size < self._max_batch_size:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                if size + len(item[0]) > self._max_batch_size:
                    waiting = item  # too large for this batch: it starts the next one
                    break
                batch.append(item)
                size += len(item[0])
            await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        texts = [text for item, _, _ in batch for text in item]
        try:
            logits = await self._model.run(self._model.logits, texts)
        except Exception as error:  # a failed call fails its requests, not the server
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for item, future, _ in batch:
            if not future.done():  # a client that went away cancelled its future
                future.set_result(logits[start : start + len(item)])
            start += len(item)


# -- request parsing -----------------------------------------------------------------------------


def _text_of(value: Any, where: str) -> str:
    """A review given as a string or as `{"b64": "..."}`."""
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            value = base64.b64decode(value["b64"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RequestError(f"{where}: b64 is not base64 of UTF-8 text.") from None
    if not isinstance(value, str):
        raise RequestError(
            f"{where} must be a string (a review), not {_json_type(value)}: "
            f'give {{"instances": ["text", ...]}} or {{"inputs": ["text", ...]}}.'
        )
    if len(value) > MAX_TEXT_CHARACTERS:
        raise RequestError(
            f"{where} has {len(value):,} characters; this server classifies reviews of up to "
            f"{MAX_TEXT_CHARACTERS:,} characters. Shorten it."
        )
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def parse_predict_request(body: Any, *, max_instances: int) -> tuple[list[str], bool]:
    """Reads the reviews of a TensorFlow Serving predict request.

    Args:
        body: the decoded JSON body.
        max_instances: most reviews accepted.

    Returns:
        `(texts, columnar)`: `columnar` is True for the `inputs` format.

    Raises:
        RequestError: for anything TensorFlow Serving would refuse, or too many reviews.
    """
    if not isinstance(body, dict):
        raise RequestError(f"The request body must be a JSON object, not {_json_type(body)}.")
    signature = body.get("signature_name", _SIGNATURE_NAME)
    if signature != _SIGNATURE_NAME:
        raise RequestError(f'Serving signature name: "{signature}" not found in signature def')
    if ("instances" in body) == ("inputs" in body):
        raise RequestError('Give exactly one of "instances" (row format) or "inputs" (columnar).')
    columnar = "inputs" in body
    values = body["inputs"] if columnar else body["instances"]
    if columnar and isinstance(values, dict):
        if set(values) != {_INPUT_NAME}:
            raise RequestError(f'"inputs" names {sorted(values)}; the only input is "text".')
        values = values[_INPUT_NAME]
    if columnar and (isinstance(values, str) or (isinstance(values, dict) and "b64" in values)):
        values = [values]
    if not isinstance(values, list) or not values:
        raise RequestError(
            f'"{"inputs" if columnar else "instances"}" must be a non-empty list of reviews.'
        )
    if len(values) > max_instances:
        raise RequestError(
            f"The request holds {len(values):,} reviews; this server takes at most "
            f"{max_instances:,} per request."
        )
    texts = []
    for index, value in enumerate(values):
        where = f"{'inputs' if columnar else 'instances'}[{index}]"
        if not columnar and isinstance(value, dict) and "b64" not in value:
            if set(value) != {_INPUT_NAME}:
                raise RequestError(f'{where} names {sorted(value)}; the only input is "text".')
            value, where = value[_INPUT_NAME], f"{where}.text"
        texts.append(_text_of(value, where))
    return texts, columnar


def token_weights(text: str, weights: dict[str, float]) -> list[dict[str, Any]]:
    """The review's whitespace-separated tokens as written, each with the weight of the word it
    holds (the strongest, if standardisation splits it), as `predict --explain` colours them."""
    from imdb_rnn.inference.explain import words_of

    tokens = text.split()
    return [
        {"text": token, "weight": max((weights.get(w, 0.0) for w in words), key=abs, default=0.0)}
        for token, words in zip(tokens, words_of(tokens), strict=True)
    ]


# -- the application -----------------------------------------------------------------------------


def prediction_outputs(
    logits: np.ndarray,
    label_names: Sequence[str],
    *,
    threshold: float | None = None,
    temperature: float = 1.0,
) -> dict[str, list[Any]]:
    """The outputs of `imdb-rnn export`'s SavedModel signature for these logits, as columns.

    Two classes: `label` (the second class from a probability of `threshold`, None: 0.5),
    `probability` (of the second class) and `logit`. More: `label` (the predicted class),
    `score` (its probability), `scores` (every class's, in the order of `label_names`) and
    `logits`. Logits are divided by `temperature` (the model's saved decision) first.

    Example:

    >>> prediction_outputs(np.array([0.0]), ("neg", "pos"))
    {'label': ['pos'], 'probability': [0.5], 'logit': [0.0]}
    """
    logits = np.asarray(logits, dtype=np.float64) / temperature
    probabilities = class_probabilities(logits)
    if logits.ndim == 1:
        indices = predicted_indices(probabilities, threshold=threshold)
        return {
            "label": [label_names[int(index)] for index in indices],
            "probability": [float(p) for p in probabilities[:, 1]],
            "logit": [float(value) for value in logits],
        }
    indices = predicted_indices(probabilities)
    return {
        "label": [label_names[int(index)] for index in indices],
        "score": [float(row[index]) for row, index in zip(probabilities, indices, strict=True)],
        "scores": [[float(p) for p in row] for row in probabilities],
        "logits": [[float(value) for value in row] for row in logits],
    }


def json_codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    """`(loads, dumps)` for request and response bodies: orjson's where it is installed (the
    `serve` extra installs it), else the standard library's, with the same output (compact,
    UTF-8, no NaN)."""
    try:
        import orjson
    except ImportError:

        def dumps(value: Any) -> bytes:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            return text.encode("utf-8")

        return json.loads, dumps
    return orjson.loads, orjson.dumps


def _page(model_name: str) -> str:
    static = resources.files("imdb_rnn.deploy").joinpath("static")
    page = static.joinpath("index.html").read_text(encoding="utf-8")
    return page.replace("{{MODEL_NAME}}", html.escape(model_name, quote=True))


def create_app(
    model_dir: str | os.PathLike[str],
    *,
    options: ServeOptions | None = None,
    trainer: Classifier | None = None,
) -> Starlette:
    """Loads a model directory once and returns the ASGI app that serves it.

    Args:
        model_dir: directory written by `imdb-rnn train`.
        options: batching and limits; default `ServeOptions()`.
        trainer: an already loaded `Classifier` (or `Trainer`) to serve instead of loading
            `model_dir` (tests).

    Returns:
        A Starlette application; run it with `run_server` or any ASGI server (its lifespan
        starts the batcher, so run it with lifespan events on).

    Raises:
        ModelFileError: if the model directory cannot be loaded.
        ModuleNotFoundError: if the `serve` extra is not installed.
    """
    hint = missing_dependency()
    if hint is not None:
        raise ModuleNotFoundError(hint, name="starlette")
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import HTMLResponse, JSONResponse as StarletteJSONResponse
    from starlette.routing import Route

    from imdb_rnn.inference.classifier import Classifier

    loads, dumps = json_codec()

    class JSONResponse(StarletteJSONResponse):
        def render(self, content: Any) -> bytes:
            return dumps(content)

    options = options or ServeOptions()
    loaded = trainer if trainer is not None else Classifier.load(model_dir)
    label_names = tuple(loaded.label_names)
    decision = loaded.decision
    model = _Model(loaded)
    batcher = _Batcher(
        model, max_batch_size=options.max_batch_size, max_wait=options.max_wait_ms / 1000
    )
    started = time.time()

    def error(message: str, status: int) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > options.max_body_bytes:
            raise RequestError(_too_large(options.max_body_bytes), 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > options.max_body_bytes:
                raise RequestError(_too_large(options.max_body_bytes), 413)
        try:
            return loads(bytes(body))
        except (ValueError, RecursionError) as bad:
            raise RequestError(f"The request body is not valid JSON ({bad}).") from None

    async def logits_of(texts: list[str]) -> np.ndarray:
        if options.batching:
            return await batcher.logits(texts)
        return await model.run(model.logits, texts)

    def resolve(request: Request, verbs: tuple[str, ...]) -> str:
        """Checks the model name, version and verb of `/v1/models/...`; returns the verb."""
        match = _MODEL_PATH.match(request.path_params["path"])
        if match is None or (match["rest"] or "") not in verbs:
            raise RequestError(f"Malformed request: {request.method} {request.url.path}", 404)
        if match["name"] != options.model_name:
            raise RequestError(f"Servable not found for request: Latest({match['name']})", 404)
        if match["version"] is not None and match["version"] != MODEL_VERSION:
            raise RequestError(
                f"Servable not found for request: Specific({match['name']}, {match['version']})",
                404,
            )
        return match["rest"] or ""

    async def get_model(request: Request) -> Response:
        try:
            verb = resolve(request, ("", "/metadata"))
        except RequestError as bad:
            return error(str(bad), bad.status)
        if verb == "/metadata":
            return JSONResponse(_metadata(options.model_name, label_names))
        return JSONResponse(
            {
                "model_version_status": [
                    {
                        "version": MODEL_VERSION,
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                ]
            }
        )

    async def post_model(request: Request) -> Response:
        try:
            verb = resolve(request, (":predict", ":explain"))
            body = await read_json(request)
            if verb == ":explain":
                return JSONResponse(await explain(body))
            texts, columnar = parse_predict_request(body, max_instances=options.max_instances)
        except RequestError as bad:
            return error(str(bad), bad.status)
        outputs = prediction_outputs(
            await logits_of(texts),
            label_names,
            threshold=decision.threshold,
            temperature=decision.temperature,
        )
        if columnar:
            return JSONResponse({"outputs": outputs})
        rows = [dict(zip(outputs, row, strict=True)) for row in zip(*outputs.values(), strict=True)]
        return JSONResponse({"predictions": rows})

    async def explain(body: Any) -> dict[str, Any]:
        texts, _ = parse_predict_request(body, max_instances=options.max_explain_instances)
        for index, text in enumerate(texts):
            if len(text) > MAX_EXPLAIN_CHARACTERS:
                raise RequestError(
                    f"instances[{index}] has {len(text):,} characters; explanations take reviews "
                    f"of up to {MAX_EXPLAIN_CHARACTERS:,} (each distinct word costs a "
                    "prediction). Shorten it."
                )
        probabilities = class_probabilities(await logits_of(texts))
        from imdb_rnn.inference.explain import explain as explain_reviews

        explanations = await model.run(explain_reviews, model.classifier, texts)
        results = []
        rows = zip(
            texts,
            probabilities,
            explanations,
            strict=True,
        )
        for text, row, explanation in rows:
            weights = {item.word: item.weight for item in explanation.weights}
            # The keys of `imdb-rnn predict --explain --json`, and the page's coloured tokens.
            prediction = prediction_of(text, row, label_names, threshold=decision.threshold)
            result = prediction.to_dict()
            del result["text"], result["known_words"]
            result["explained"] = explanation.label
            result["explanation"] = explanation.to_list()
            result["tokens"] = token_weights(text, weights)
            results.append(result)
        return {"explanations": results}

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "model": options.model_name,
                "labels": list(label_names),
                "batching": options.batching,
                "model_calls": model.calls,
                "uptime_s": time.time() - started,
            }
        )

    async def page(request: Request) -> Response:
        return HTMLResponse(_page(options.model_name))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(str(exc.detail), exc.status_code)

    async def internal_error(request: Request, exc: Exception) -> Response:
        return error(f"Internal error ({type(exc).__name__}).", 500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if options.batching:
            batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            model.executor.shutdown(wait=False, cancel_futures=True)

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/v1/models/{path:path}", get_model, methods=["GET"]),
            Route("/v1/models/{path:path}", post_model, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.model = model
    app.state.options = options
    return app


def _too_large(limit: int) -> str:
    return f"The request body is larger than {limit:,} bytes; send fewer or shorter reviews."


def _metadata(model_name: str, label_names: Sequence[str]) -> dict[str, Any]:
    """The signature of `imdb-rnn export`'s SavedModel, as TensorFlow Serving describes it."""

    def tensor(name: str, dtype: str, *sizes: int) -> dict[str, Any]:
        dims = [{"size": str(size), "name": ""} for size in (-1, *sizes)]
        return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}

    # TensorFlow Serving numbers the outputs in the order of their sorted names.
    if two_classes(label_names):
        outputs = {
            "label": tensor("StatefulPartitionedCall:0", "DT_STRING"),
            "probability": tensor("StatefulPartitionedCall:2", "DT_FLOAT"),
            "logit": tensor("StatefulPartitionedCall:1", "DT_FLOAT"),
        }
    else:
        classes = len(label_names)
        outputs = {
            "label": tensor("StatefulPartitionedCall:0", "DT_STRING"),
            "logits": tensor("StatefulPartitionedCall:1", "DT_FLOAT", classes),
            "score": tensor("StatefulPartitionedCall:2", "DT_FLOAT"),
            "scores": tensor("StatefulPartitionedCall:3", "DT_FLOAT", classes),
        }

    return {
        "model_spec": {"name": model_name, "signature_name": "", "version": MODEL_VERSION},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    _SIGNATURE_NAME: {
                        "inputs": {_INPUT_NAME: tensor("serving_default_text:0", "DT_STRING")},
                        "outputs": outputs,
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        },
    }


def bind_socket(host: str, port: int) -> socket.socket:
    """Binds a listening TCP socket (IPv4 or IPv6, from `host`); port 0 picks a free port.

    Raises:
        OSError: if the address cannot be bound (in use, not this machine's, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_server(
    app: Starlette,
    sock: socket.socket,
    *,
    log_level: str = "warning",
    access_log: bool = False,
) -> None:
    """Serves `app` with uvicorn on an already bound socket (see `bind_socket`) until Ctrl-C
    or SIGTERM.

    Args:
        app: the app of `create_app`.
        sock: a bound, listening socket.
        log_level: uvicorn's log level. Default `"warning"`.
        access_log: log every request. Default False.
    """
    import uvicorn

    config = uvicorn.Config(
        app, log_level=log_level, access_log=access_log, lifespan="on", timeout_keep_alive=30
    )
    uvicorn.Server(config).run(sockets=[sock])


def listening_url(sock: socket.socket) -> str:
    """`http://HOST:PORT` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def page_path() -> Path:
    """Where the page's HTML lives in the installed package."""
    return Path(str(resources.files("imdb_rnn.deploy").joinpath("static/index.html")))
