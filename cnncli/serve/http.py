"""``cnncli serve``: a trained run behind HTTP, on Starlette and uvicorn (``cnncli[serve]``).

The run is opened as ``predict`` opens it (every sha256, every field checked) and answers one
warm-up row before the socket is bound, so a run that fails a check never starts a server and a
server that accepts connections is ready. Requests go through the same code as ``predict``:
``records`` (JSON rows through ``rows.parse_cell``'s cell rules), ``batch`` (CSV blocks), the
one ``Predictor`` and decoder. Each request is independent: nothing it sends is kept.

The only module that imports Starlette or uvicorn.
"""

import asyncio
import contextlib
import datetime as dt
import functools
import io
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnncli import __version__
from cnncli.errors import CnnCliError, Location
from cnncli.runs import ONNX_FILENAME, RunFolder, open_run
from cnncli.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cnncli.serve.metrics import Metrics
from cnncli.serve.openapi import SWAGGER_PAGE, openapi_document
from cnncli.serve.predictor import (
    Predictor,
    Surprises,
    model_inputs,
    predict_columns,
)
from cnncli.serve.records import BadRequest, load_body, request_rows, rows_to_inputs

#: Where ``--workers N`` hands the settings to each worker process (JSON).
SETTINGS_ENV = "CNNCLI_SERVE_SETTINGS"
#: JSON bodies up to this size (about 100 rows) are predicted on the event loop; larger ones in a
#: thread, so that the loop keeps answering while they run.
INLINE_BYTES = 4096
#: Paths that answer without a token: a load balancer's probe carries none.
OPEN_PATHS = frozenset({"/health"})
#: The endpoints the metrics name; any other path counts as ``other``.
KNOWN_PATHS = frozenset(
    {"/predict", "/predict/csv", "/health", "/metadata", "/metrics", "/openapi.json", "/docs"}
)
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded")  # the second: `curl -d`
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/x-www-form-urlencoded")
INSTALL_HINT = "install them with: pip install 'cnncli[serve]'"


@dataclass(frozen=True)
class ServeSettings:
    """What ``cnncli serve`` was asked for.

    Attributes:
        run: the run folder (resolved).
        host: the address to bind; loopback unless the user chooses another.
        port: the port (0: any free one, named when ready).
        workers: server processes sharing the socket, each with its own model.
        max_body: the largest request body, in bytes.
        max_rows: the most rows one JSON request may hold.
        timeout: seconds a request may take, from its first byte to its answer; also the bound
            on finishing in-flight requests at SIGTERM.
        token: the bearer token every request but ``/health`` must carry, or None.
        quiet: no access log.
    """

    run: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body: int = 16 << 20
    max_rows: int = 100_000
    timeout: float = 30.0
    token: str | None = None
    quiet: bool = False


def require_server_libraries() -> None:
    """Raises: CnnCliError: Starlette or uvicorn is not installed (the ``serve`` extra)."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise CnnCliError(
            f"cnncli serve needs Starlette and uvicorn ({exc.name} is not installed)",
            hint=INSTALL_HINT,
        ) from None


# ---------------------------------------------------------------------------------------------
# The model at work


class Service:
    """A run loaded for serving: the predictor, what ``/metadata`` says, and the counters.

    Args:
        run: an opened (verified) run folder.

    Raises:
        CnnCliError: the model cannot be loaded or does not answer the warm-up row.
    """

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.predictor = Predictor(run, "auto", threads=1)
        self.pre = run.preprocessor
        self.missing = str((run.config.get("data") or {}).get("missing", "error"))
        self.metrics = Metrics()
        self.ready = False
        predict_columns(self.predictor, self._warm_up_row())
        self.ready = True
        # The CSV endpoint reads with pandas, whose import takes about a second: done beside
        # the server once it is up, not in the first CSV request nor before the port opens.
        threading.Thread(target=_import_csv_reader, name="cnncli-import", daemon=True).start()

    def _warm_up_row(self) -> dict[str, np.ndarray]:
        """One row of training-like values: each number's mean, each column's first category."""
        columns: dict[str, np.ndarray] = {}
        for feature in self.pre.features:
            if feature.kind == "categorical":
                columns[feature.name] = np.asarray(feature.categories[:1] or [""], dtype=object)
            else:
                value = feature.fill if feature.fill is not None else feature.center
                columns[feature.name] = np.asarray([value if feature.kind == "numeric" else 0.0])
        return columns

    def predict_json(self, body: bytes, max_rows: int) -> tuple[str, int]:
        """A JSON body's predictions as JSON text, ``predict --json``'s labels and probabilities
        (``{"predictions": [{"label": ..., "probabilities": {...}}], ...}``), and the row count.

        Raises:
            BadRequest: the body or one of its cells (row and column named).
        """
        shape, rows = request_rows(load_body(body), max_rows)
        if not rows:
            return self._answer([], []), 0
        columns = rows_to_inputs(self.pre, shape, rows, self.missing)
        try:
            result = predict_columns(self.predictor, columns)
        except CnnCliError as exc:  # outputs that are not finite: extreme values in the rows
            raise BadRequest(422, exc.message, hint=exc.hint) from None
        if result.probabilities is None:
            predictions = [f'{{"label": {value!r}}}' for value in result.labels]
        else:
            # one template per row: json.dumps of a dict per row took twice as long for batches
            labels = [json.dumps(c) for c in self.pre.label.classes]
            template = self._row_template
            predictions = [
                template % (labels[index], *probabilities)
                for index, probabilities in zip(
                    result.decoded.tolist(),  # type: ignore[union-attr]
                    result.probabilities.tolist(),
                    strict=True,
                )
            ]
        return self._answer(predictions, result.warnings), len(rows)

    @functools.cached_property
    def _row_template(self) -> str:
        """``{"label": %s, "probabilities": {"a": %r, ...}}``: one row of a classifier."""
        keys = ", ".join(f"{json.dumps(str(c))}: %r" for c in self.pre.label.classes)
        return f'{{"label": %s, "probabilities": {{{keys}}}}}'

    def _answer(self, predictions: list[str], warnings: list[str]) -> str:
        backend = json.dumps(self.predictor.backend)
        return (
            f'{{"predictions": [{", ".join(predictions)}], "backend": {backend},'
            f' "warnings": {json.dumps(warnings)}}}'
        )

    def predict_csv(self, body: bytes) -> tuple[list[bytes], int]:
        """A CSV body's predictions as CSV pieces (``predict --input-file``'s columns).

        Every row is read and predicted before the first byte is sent, so that a bad row is a
        status code, not a cut-off stream.

        Raises:
            BadRequest: 422 naming the first bad row's line and column, or the header's problem.
        """
        from cnncli.serve.batch import parse_blocks, read_layout
        from cnncli.serve.batch_write import CsvWriter

        source = Path("body")
        handle = io.BytesIO(body)
        try:
            layout = read_layout(handle, source, self.pre, self.run.config)
            chunks = list(parse_blocks(handle, layout, str(source)))
        except CnnCliError as exc:
            raise BadRequest(422, exc.message, where=exc.where, hint=exc.hint) from None
        for chunk in chunks:
            if chunk.bad:
                bad = chunk.bad[0]
                raise BadRequest(
                    422,
                    bad.message,
                    where=Location(file=str(source), line=bad.line),
                    hint="fix that row",
                )
        surprises = Surprises(self.pre)
        stream = io.BytesIO()
        writer = CsvWriter(stream, layout, self.pre.label)
        writer.start()
        pieces, rows = [], 0
        for chunk in chunks:
            if not len(chunk):
                continue
            surprises.add(chunk.columns)
            try:
                outputs = self.predictor.outputs(model_inputs(self.pre, chunk.columns))
            except CnnCliError as exc:
                raise BadRequest(422, exc.message, hint=exc.hint) from None
            writer.write(chunk, outputs)
            rows += len(chunk)
            pieces.append(stream.getvalue())
            stream.seek(0)
            stream.truncate()
        pieces.append(stream.getvalue())
        return [piece for piece in pieces if piece], rows

    def metadata(self) -> dict[str, Any]:
        """The run as a client needs it: features with types and ranges, classes, task."""
        features = []
        for feature in self.pre.features:
            entry: dict[str, Any] = {"name": feature.name, "type": feature.kind}
            if feature.kind == "numeric":
                entry["minimum"], entry["maximum"] = feature.minimum, feature.maximum
                entry["empty_allowed"] = feature.fill is not None
            elif feature.kind == "categorical":
                entry["categories"] = list(feature.categories)
            features.append(entry)
        label = self.pre.label
        files = self.run.manifest.get("files", {})
        model_file = ONNX_FILENAME if self.predictor.backend == "onnx" else "model.keras"
        return {
            "run": self.run.path.name,
            "name": self.run.config.get("name"),
            "task": "classification" if label.is_classification else "regression",
            "label": {"name": label.name, "kind": label.kind},
            "classes": list(label.classes),
            "features": features,
            "backend": self.predictor.backend,
            "model_file": model_file,
            "model_sha256": files.get(model_file),
            "cnncli_version": __version__,
        }


def _import_csv_reader() -> None:
    import cnncli.serve.batch  # noqa: F401 - pandas, for /predict/csv


# ---------------------------------------------------------------------------------------------
# The HTTP application


def build_app(settings: ServeSettings, service: Service | None = None) -> Any:
    """The ASGI application: Starlette routes inside the auth/metrics/access-log layer.

    Starlette rather than FastAPI: FastAPI took 0.5 s to import (its pydantic models), half of
    the start-up budget, and a tenth of a millisecond per request to solve dependencies that
    these routes do not have. The OpenAPI document is written out here instead.

    Args:
        settings: limits, token and logging.
        service: a loaded run; None loads ``settings.run`` (each ``--workers`` process does).
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response, StreamingResponse
    from starlette.routing import Route

    if service is None:
        service = Service(open_run(Path(settings.run)))
    loaded = service

    async def handled(request: Request, work: Callable[[bytes], Any], inline_bytes: int) -> Any:
        """Read the body within the limits, then ``work`` it, all within ``--timeout``."""

        async def read_and_work() -> Any:
            body = await read_body(request, settings.max_body)
            if len(body) < inline_bytes:  # a few rows: quicker here than a thread's round trip
                return work(body)
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(work, body)

        try:
            if sys.version_info >= (3, 11):  # a deadline on this task: no second task to start
                async with asyncio.timeout(settings.timeout):
                    return await read_and_work()
            return await asyncio.wait_for(read_and_work(), settings.timeout)
        except asyncio.TimeoutError:  # TimeoutError since 3.11; its own class on 3.10
            raise BadRequest(
                503,
                f"the request took longer than the limit of {settings.timeout:g} s (--timeout)",
                hint="send fewer rows per request, or ask the operator for a longer --timeout",
            ) from None

    async def predict(request: Request) -> Response:
        require_type(request, JSON_TYPES, "/predict/csv for CSV")

        def work(body: bytes) -> tuple[str, int]:
            return loaded.predict_json(body, settings.max_rows)

        answer, rows = await handled(request, work, INLINE_BYTES)
        request.state.rows = rows
        return Response(answer, media_type="application/json")

    async def predict_csv(request: Request) -> Response:
        require_type(request, CSV_TYPES, "/predict for JSON")
        pieces, rows = await handled(request, loaded.predict_csv, 0)
        request.state.rows = rows
        return StreamingResponse(iter(pieces), media_type="text/csv; charset=utf-8")

    async def health(_request: Request) -> Response:
        body = {"status": "ready" if loaded.ready else "loading"}
        status = 200 if loaded.ready else 503
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    metadata = json.dumps(service.metadata())
    openapi = json.dumps(openapi_document(service.pre.feature_names, service.run.path.name))

    async def run_metadata(_request: Request) -> Response:
        return Response(metadata, media_type="application/json")

    async def metrics(_request: Request) -> Response:
        return Response(loaded.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def openapi_json(_request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def docs(_request: Request) -> Response:
        return HTMLResponse(SWAGGER_PAGE)

    async def bad_request(_request: Request, exc: Exception) -> Response:
        return error_response(exc)  # type: ignore[arg-type]

    async def no_such_endpoint(request: Request, exc: Exception) -> Response:
        """A wrong path or method, in the same one-line JSON as every other refusal."""
        status = exc.status_code  # type: ignore[attr-defined]
        detail = str(exc.detail).lower()  # type: ignore[attr-defined]
        error = BadRequest(
            status,
            f"{request.method} {request.url.path}: {detail}",
            hint="POST /predict or /predict/csv; GET /health, /metadata, /metrics or /docs",
        )
        return error_response(error)

    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/predict/csv", predict_csv, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metadata", run_metadata, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
        ],
        exception_handlers={BadRequest: bad_request, HTTPException: no_such_endpoint},
    )
    app.router.redirect_slashes = False  # /predict/ was a bodiless 307, not the JSON 404
    log = None if settings.quiet else access_line
    return Gate(app, service.metrics, settings.token, log)


def require_type(request: Any, accepted: tuple[str, ...], other: str) -> None:
    """Raises: BadRequest: 415 for a content type the endpoint does not read."""
    given = request.headers.get("content-type", "")
    media = given.split(";", 1)[0].strip().lower()
    json_like = media.endswith("+json") and "application/json" in accepted
    if media and media not in accepted and not json_like:
        raise BadRequest(
            415,
            f"content type {given!r} is not one this endpoint reads ({', '.join(accepted)})",
            hint=f"send Content-Type: {accepted[0]}, or POST to {other}",
        )


async def read_body(request: Any, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` bytes.

    Raises:
        BadRequest: 413 naming the limit.
    """
    declared = request.headers.get("content-length")
    too_big = BadRequest(
        413,
        f"the body is over the limit of {limit:,} bytes (--max-body)",
        hint="send fewer rows per request",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    from starlette.requests import ClientDisconnect

    parts, size = [], 0
    try:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise too_big
            parts.append(part)
    except ClientDisconnect:  # nobody is left to answer; the access log still gets its line
        raise BadRequest(
            400, "the client closed the connection before the body ended", hint="send it whole"
        ) from None
    return b"".join(parts)


def error_response(error: BadRequest) -> Any:
    """A ``BadRequest`` as its status and JSON body."""
    from starlette.responses import Response

    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return Response(
        json.dumps(error.to_json()),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


class Gate:
    """The ASGI layer around the routes: the token, the metrics and the access log.

    Args:
        app: the Starlette application.
        metrics: where each request is counted.
        token: the bearer token required on every path but ``OPEN_PATHS``, or None.
        log: called with each request's access-log line, or None.
    """

    def __init__(
        self,
        app: Any,
        metrics: Metrics,
        token: str | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.expected = f"Bearer {token}".encode() if token else None
        self.log = log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent: dict[str, Any] = {"status": 500, "bytes": 0}

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            elif message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
            await send(message)

        path = scope["path"]
        state = scope.setdefault("state", {})
        try:
            if self.expected is not None and path not in OPEN_PATHS and not self._authorised(scope):
                await _send_error(counting_send, _unauthorised(scope))
            else:
                await self.app(scope, receive, counting_send)
        finally:
            seconds = time.perf_counter() - started
            rows = int(state.get("rows", 0)) if sent["status"] < 400 else 0
            shown = path if path in KNOWN_PATHS else "other"
            self.metrics.observe(shown, sent["status"], seconds, rows)
            if self.log is not None:
                self.log(_access_entry(scope, sent, seconds, rows))

    def _authorised(self, scope: dict[str, Any]) -> bool:
        import hmac

        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
        return hmac.compare_digest(given, self.expected or b"")


def _unauthorised(scope: dict[str, Any]) -> BadRequest:
    has_header = any(name == b"authorization" for name, _ in scope["headers"])
    what = "the bearer token is wrong" if has_header else "this server requires a bearer token"
    return BadRequest(401, what, hint="send the header Authorization: Bearer <token>")


async def _send_error(send: Any, error: BadRequest) -> None:
    body = json.dumps(error.to_json()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _access_entry(scope: dict[str, Any], sent: dict[str, Any], seconds: float, rows: int) -> str:
    client = scope.get("client") or ("", 0)
    return json.dumps(
        {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "client": f"{client[0]}:{client[1]}",
            "method": scope["method"],
            "path": scope["path"],
            "status": sent["status"],
            "rows": rows,
            "bytes": sent["bytes"],
            "ms": round(seconds * 1000, 3),
        }
    )


def access_line(line: str) -> None:
    """Write one access-log line on stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# The server


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound socket for the server, or a one-line error (port taken, address not here).

    Raises:
        CnnCliError: the address cannot be bound.
    """
    if not host.strip():  # the socket module reads "" as every interface: say so instead
        raise CnnCliError(
            "the address is empty",
            where=Location(file="--host"),
            hint="give one, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CnnCliError(
            f"cannot listen there: {reason}",
            where=Location(file=f"{host}:{port}"),
            hint="choose another --port (0 picks a free one) or --host",
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(
    settings: ServeSettings, on_ready: Callable[[str], None], run: RunFolder | None = None
) -> None:
    """Load the run, bind the socket, serve until SIGTERM or SIGINT.

    At SIGTERM the server stops accepting, lets in-flight requests finish within
    ``settings.timeout`` seconds, and returns.

    Args:
        settings: what to serve, where, and how.
        on_ready: called with the server's URL once it accepts connections.
        run: ``settings.run`` already opened, or None to open it here.

    Raises:
        CnnCliError: the libraries are missing, the run fails a check, the address is taken.
    """
    require_server_libraries()
    import uvicorn

    service = Service(run or open_run(Path(settings.run)))  # every check before a socket opens
    sock = listening_socket(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    common: dict[str, Any] = {
        "log_level": "error",  # a malformed request is the client's: no line of ours
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": max(1, int(settings.timeout + 0.999)),
        "lifespan": "off",
    }
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
        config = uvicorn.Config(
            "cnncli.serve.http:app_from_environment",
            factory=True,
            workers=settings.workers,
            http="cnncli.serve.http:HeadDeadlineProtocol",  # built in each worker
            **common,
        )
        from uvicorn.supervisors import Multiprocess

        class Supervisor(Multiprocess):  # uvicorn returns after either signal: say which
            stopped_by: int | None = None

            def handle_int(self) -> None:
                self.stopped_by = signal.SIGINT
                super().handle_int()

        supervisor = Supervisor(config, sockets=[sock])
        on_ready(url)
        supervisor.run()
        if supervisor.stopped_by == signal.SIGINT:  # Ctrl-C exits 130 here too, not 0
            raise KeyboardInterrupt
        return

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                on_ready(url)

    protocol = head_deadline_protocol(settings.timeout)
    config = uvicorn.Config(build_app(settings, service), http=protocol, **common)
    with contextlib.closing(sock):
        Server(config).run(sockets=[sock])


def head_deadline_protocol(seconds: float) -> type:
    """uvicorn's HTTP protocol with a deadline on each request's head (line and headers).

    uvicorn bounds the idle time between requests but not a head that never ends: a client
    that sends ``POST /predict HTTP/1.1`` and a header a minute (slowloris) held its connection
    for ever, before ``--timeout`` (which runs inside the application) could start. Here a head
    not complete ``seconds`` after its first byte closes the connection.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class HeadDeadline(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
        _deadline: Any = None
        _armed_for: Any = None  # the request before the head the deadline is for

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            between = self.cycle is None or self.cycle.response_complete
            if between and (self._deadline is None or self._armed_for is not self.cycle):
                self._arm()  # the first bytes of the next request's head
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._armed_for = self.cycle
            self._deadline = self.loop.call_later(seconds, self._overdue)

        def _overdue(self) -> None:
            self._deadline = None
            # no request head completed since the deadline was set: the head is overdue
            if self.cycle is self._armed_for and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadline


def __getattr__(name: str) -> Any:
    """``HeadDeadlineProtocol``: built on first use, so that importing this module imports no
    uvicorn; each ``--workers`` process builds its own from ``SETTINGS_ENV``."""
    if name == "HeadDeadlineProtocol":
        settings = os.environ.get(SETTINGS_ENV)
        seconds = float(json.loads(settings)["timeout"]) if settings else ServeSettings.timeout
        globals()[name] = head_deadline_protocol(seconds)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_from_environment() -> Any:
    """The application of one ``--workers`` process, from the settings in ``SETTINGS_ENV``."""
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    return build_app(settings)
