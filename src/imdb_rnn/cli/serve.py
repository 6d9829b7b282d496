"""`imdb-rnn serve`: serve a model over HTTP (`imdb_rnn.deploy.serve.run_server`)."""

from __future__ import annotations

from typing import Annotated

import typer

from imdb_rnn.cli._errors import EXIT_IO, EXIT_USAGE, fail
from imdb_rnn.cli._options import ModelDirArgument
from imdb_rnn.cli._quiet import quiet_tensorflow
from imdb_rnn.cli._render import markup, stderr

__all__ = ["serve"]


def serve(
    model_dir: ModelDirArgument,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; the default answers this machine only "
            "(0.0.0.0 answers every network: the server has no authentication)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8501,
    model_name: Annotated[
        str, typer.Option(help="The NAME in the URLs /v1/models/NAME:predict ...")
    ] = "imdb-rnn",
    batching: Annotated[
        bool,
        typer.Option(
            "--batching/--no-batching",
            help="Batch requests that arrive together into one model call.",
        ),
    ] = True,
    max_batch_size: Annotated[
        int, typer.Option(help="Most reviews in one batched model call.")
    ] = 64,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            help="How long a request waits for others to batch with, in milliseconds (0: "
            "batches gather the requests that queue while the model runs)."
        ),
    ] = 0.0,
    max_body_bytes: Annotated[
        int, typer.Option(help="Larger request bodies are refused (413).")
    ] = 1 << 20,
) -> None:
    """Serve a model over HTTP with TensorFlow Serving's REST API, and a page to try it.

    POST /v1/models/NAME:predict takes {"instances": ["review", ...]} (or {"inputs": [...]})
    and answers {"predictions": [{"probability": p, "logit": l}, ...]} (or {"outputs": ...}),
    as TensorFlow Serving answers for the export; /v1/models/NAME:explain adds each word's
    weight; GET / is a page to type a review; GET /healthz says it is up. Needs the serve extra:
    pip install "imdb-rnn[serve]". Examples:

        imdb-rnn serve runs/default

        curl -d '{"instances": ["A moving film."]}' localhost:8501/v1/models/imdb-rnn:predict
    """
    from imdb_rnn.deploy.serve import missing_dependency

    hint = missing_dependency()
    if hint is not None:
        fail(hint, EXIT_USAGE)
    if not 0 <= port <= 65535:
        fail(f"--port must be in 0..65535 (got {port}).", EXIT_USAGE)
    quiet_tensorflow()
    console = stderr()
    from imdb_rnn.deploy.serve import (
        ServeOptions,
        bind_socket,
        create_app,
        listening_url,
        run_server,
    )

    try:  # ServeOptions raises a plain ValueError for a bad value
        options = ServeOptions(
            model_name=model_name,
            batching=batching,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_body_bytes=max_body_bytes,
        )
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    from imdb_rnn.devices import prepare_native_kernel

    prepare_native_kernel(on_stage=lambda message: console.print(f"[dim]{markup(message)}...[/]"))
    console.print("[dim]»[/] Loading the model", highlight=False)
    application = create_app(model_dir, options=options)
    try:
        sock = bind_socket(host, port)
    except OSError as error:
        fail(f"Cannot listen on {host}:{port}: {error.strerror or error}.", EXIT_IO)
    url = listening_url(sock)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[bold yellow]warning:[/] listening on {markup(host)}: other machines can "
            "reach this server, which has no authentication.",
            highlight=False,
        )
    console.print(
        f"Serving [bold]{markup(model_name)}[/] on {url} (page: {url}/, predict: "
        f"{url}/v1/models/{markup(model_name)}:predict); Ctrl-C stops.",
        highlight=False,
        soft_wrap=True,
    )
    run_server(application, sock)
