"""``cnncli serve`` over real HTTP: a uvicorn process per server, requests to 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from cnncli.cli import cli
from tests.conftest import ROOT, error_lines, mixed_rows, seed_like_rows

pytestmark = pytest.mark.slow


class Server:
    """A ``cnncli serve`` process on a free port, its stderr collected line by line."""

    def __init__(self, run: Path, *options: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "cnncli", "serve", str(run), "--port", "0", *options]
        self.process = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        self.lines: list[str] = []
        self.url = ""
        ready = threading.Event()

        def collect() -> None:
            for line in self.process.stderr:  # type: ignore[union-attr]
                self.lines.append(line.rstrip("\n"))
                if " on http://" in line and not self.url:
                    self.url = line.split(" on ", 1)[1].strip()
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=collect, daemon=True)
        self.reader.start()
        self.client = httpx.Client(timeout=30)
        if not ready.wait(60) or not self.url:
            self.stop()
            raise AssertionError("the server did not start:\n" + "\n".join(self.lines))
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self, stop: int = signal.SIGTERM) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(stop)
        code = self.process.wait(timeout=30)
        self.reader.join(timeout=5)
        self.process.stderr.close()  # type: ignore[union-attr]
        return code

    def access_log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


@pytest.fixture(scope="module")
def seed_server(seed_run: Path) -> Iterator[Server]:
    server = Server(seed_run, "--max-rows", "5000")
    yield server
    assert server.stop() == 0


def cli_predict(runner: Any, run: Path, texts: list[str]) -> list[dict[str, Any]]:
    """What ``cnncli predict --input ... --json`` gives for the rows."""
    args = ["predict", str(run), "--json"] + [arg for text in texts for arg in ("--input", text)]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["predictions"]


def assert_same(served: list[dict[str, Any]], printed: list[dict[str, Any]]) -> None:
    assert len(served) == len(printed)
    for mine, theirs in zip(served, printed, strict=True):
        assert mine["label"] == theirs["label"]
        assert mine.get("probabilities") == theirs.get("probabilities")


def test_predict_equals_cnncli_predict_for_rows_records_and_csv(seed_server, seed_run, runner):
    rows = [[3, 30, 5], [7.5, 80, 6.5], ["5", " 55 ", 3.0]]
    texts = ["3,30,5", "7.5,80,6.5", "5,55,3"]
    printed = cli_predict(runner, seed_run, texts)
    answer = seed_server.client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200
    assert_same(answer.json()["predictions"], printed)
    assert answer.json()["backend"] == "onnx"
    records = [dict(zip(["x3", "x1", "x2"], (r[2], r[0], r[1]), strict=True)) for r in rows]
    assert_same(
        seed_server.client.post("/predict", json={"records": records}).json()["predictions"],
        printed,
    )
    # the curl: form-encoded content type, as `curl -d` sends
    curl = seed_server.client.post(
        "/predict",
        content=b'{"rows": [[3,30,5]]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_same(curl.json()["predictions"], printed[:1])


def test_predict_csv_equals_predict_input_file(seed_server, seed_run, runner, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(seed_like_rows(3000, seed=4))
    expected = runner.invoke(cli, ["predict", str(seed_run), "--input-file", str(rows)])
    assert expected.exit_code == 0, expected.stderr
    answer = seed_server.client.post(
        "/predict/csv", content=rows.read_bytes(), headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.text == expected.stdout
    assert answer.text.startswith("row,predicted,prob_high,prob_low,prob_medium\n")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (
            '{"rows": [[3, 30]]}',
            "application/json",
            400,
            ["rows[0]", "got 2 value(s)", "x1, x2, x3"],
        ),
        (
            '{"rows": [[3, 30, 5], [3, "abc", 5]]}',
            None,
            422,
            ["rows[1]", "column 'x2'", "text 'abc'"],
        ),
        ('{"rows": [[3, "", 5]]}', None, 422, ["rows[0]", "column 'x2' is empty"]),
        ('{"rows": [[3, null, 5]]}', None, 422, ["rows[0]", "column 'x2' is empty"]),
        (
            '{"records": [{"x1": 3, "x2": 30, "x4": 5}]}',
            None,
            400,
            ["records[0]", "unknown feature 'x4'", "did you mean 'x3'"],
        ),
        ('{"records": [{"x1": 3, "x2": 30}]}', None, 400, ["records[0]", "missing feature(s) x3"]),
        ('{"rows": [[3, 1e999, 5]]}', None, 422, ["rows[0]", "column 'x2'", "infinite"]),
        ('{"rows": [[3, 1e39, 5]]}', None, 422, ["rows[0]", "column 'x2'", "float32"]),
        ('{"rows": [[3, NaN, 5]]}', None, 400, ["not JSON", "NaN is not a JSON number"]),
        ('{"rows": [[3, Infinity, 5]]}', None, 400, ["not JSON", "Infinity"]),
        ('{"rows": [[3, true, 5]]}', None, 422, ["rows[0]", "column 'x2'", "boolean"]),
        ('{"rows": [[3, [1], 5]]}', None, 422, ["rows[0]", "column 'x2'", "list"]),
        ('{"rows": [[3, 30, 5]', None, 400, ["not JSON", "line 1 column"]),
        ("\xff\xfe", None, 400, ["not"]),
        ('{"rowz": [[3, 30, 5]]}', None, 400, ["unknown key 'rowz'", "did you mean 'rows'"]),
        ("[[3, 30, 5]]", None, 400, ["a JSON list, not an object"]),
        ('{"rows": [[3, 30, 5]]}', "text/csv", 415, ["content type 'text/csv'", "/predict/csv"]),
        ('{"rows": [[3, 30, 5]]}', "multipart/form-data", 415, ["content type"]),
    ],
)
def test_bad_input_is_a_4xx_naming_row_and_column_and_the_next_answer_is_unchanged(
    seed_server, body, content_type, status, words
):
    good = {"rows": [[3, 30, 5]]}
    before = seed_server.client.post("/predict", json=good).json()
    headers = {"Content-Type": content_type or "application/json"}
    data = body.encode("latin-1") if body.startswith("\xff") else body.encode()
    answer = seed_server.client.post("/predict", content=data, headers=headers)
    assert answer.status_code == status
    error = answer.json()
    assert "\n" not in error["error"]
    for word in words:
        assert word in error["error"]
    if "column '" in " ".join(words):
        assert error["column"] == "x2" and error["row"] == int(words[0][5])
    assert seed_server.client.post("/predict", json=good).json() == before


def test_csv_body_errors_name_the_line_and_column(seed_server):
    answer = seed_server.client.post(
        "/predict/csv", content=b"x1,x2,x3\n3,30,5\n7,abc,6\n", headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 422
    assert answer.json()["line"] == 3
    assert "body:3: column 'x2': numeric column holds text 'abc'" in answer.json()["error"]
    missing = seed_server.client.post("/predict/csv", content=b"x1,x2\n3,30\n")
    assert missing.status_code == 422 and "missing feature column(s) x3" in missing.json()["error"]
    old_mac = seed_server.client.post("/predict/csv", content=b"x1,x2,x3\r3,30,5\r")
    assert old_mac.status_code == 422  # was a 500: csv.Error from the header reader
    assert "carriage return" in old_mac.json()["error"] and old_mac.json()["line"] == 1
    wrong = seed_server.client.post("/predict/csv", json={"rows": [[3, 30, 5]]})
    assert wrong.status_code == 415 and "/predict for JSON" in wrong.json()["error"]
    method = seed_server.client.get("/predict")
    assert method.status_code == 405
    assert method.json()["error"].startswith("GET /predict: method not allowed; POST /predict")
    assert seed_server.client.get("/nowhere").json()["error"].startswith("GET /nowhere: not found")
    slash = seed_server.client.post("/predict/", json={"rows": [[3, 30, 5]]})
    assert slash.status_code == 404  # was a 307 with no body
    assert slash.json()["error"].startswith("POST /predict/: not found")


def test_health_metadata_metrics_openapi_and_the_access_log(seed_server, seed_run):
    assert seed_server.client.get("/health").json() == {"status": "ready"}
    meta = seed_server.client.get("/metadata").json()
    manifest = json.loads((seed_run / "manifest.json").read_text())
    assert meta["run"] == seed_run.name and meta["task"] == "classification"
    assert meta["classes"] == ["high", "low", "medium"]
    assert [f["name"] for f in meta["features"]] == ["x1", "x2", "x3"]
    assert meta["features"][0]["type"] == "numeric" and meta["features"][0]["maximum"] > 0
    assert meta["model_sha256"] == manifest["files"]["model.onnx"]
    before = seed_server.client.get("/metrics").text
    seed_server.client.post("/predict", json={"rows": [[3, 30, 5], [1, 2, 3]]})
    seed_server.client.post("/predict", json={"rows": [[3, 30]]})
    after = seed_server.client.get("/metrics").text

    def value(text: str, name: str) -> float:
        found = [
            line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " ")
        ]
        return float(found[0]) if found else 0.0

    assert value(after, "cnncli_rows_total") == value(before, "cnncli_rows_total") + 2
    assert (
        value(after, 'cnncli_errors_total{path="/predict"}')
        == value(before, 'cnncli_errors_total{path="/predict"}') + 1
    )
    assert (
        value(after, "cnncli_request_seconds_count")
        >= value(before, "cnncli_request_seconds_count") + 3
    )
    assert "# TYPE cnncli_request_seconds histogram" in after
    spec = seed_server.client.get("/openapi.json").json()
    assert {"/predict", "/predict/csv", "/health", "/metadata", "/metrics"} <= set(spec["paths"])
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert schema["schema"]["oneOf"][1]["properties"]["records"]["items"]["required"] == [
        "x1",
        "x2",
        "x3",
    ]
    time.sleep(0.2)
    log = seed_server.access_log()
    posted = [entry for entry in log if entry["path"] == "/predict" and entry["rows"] == 2]
    assert posted and posted[-1]["status"] == 200 and posted[-1]["method"] == "POST"
    assert {"time", "client", "ms", "bytes"} <= set(posted[-1])


def test_regression_with_a_date_and_categories_equals_cnncli_predict(cars_run, runner):
    rows = [
        ["2016-03-04", 12.5, "red"],
        ["2018-12-31T10:00", 150, "blue"],
        ["2017-01-01", "", "teal"],
    ]
    texts = ["2016-03-04,12.5,red", "2018-12-31T10:00,150,blue", "2017-01-01,,teal"]
    names = json.loads((cars_run / "preprocess.json").read_text())["features"]
    assert [f["name"] for f in names] == ["sold", "km", "colour"]
    printed = cli_predict(runner, cars_run, texts)
    server = Server(cars_run, "--quiet")
    try:
        answer = server.client.post("/predict", json={"rows": rows}).json()
        assert_same(answer["predictions"], printed)
        assert isinstance(answer["predictions"][0]["label"], float)
        assert any("'teal'" in warning for warning in answer["warnings"])
        bad = server.client.post("/predict", json={"rows": [["2017-02-30", 1, "red"]]})
        assert bad.status_code == 422 and "column 'sold'" in bad.json()["error"]
        assert bad.json()["column"] == "sold"
        assert server.lines == [line for line in server.lines if not line.startswith("{")]
    finally:
        assert server.stop() == 0


def test_categorical_features_equal_cnncli_predict(mixed_run, runner, tmp_path):
    texts = ["0.5,red,3", "1.5,blue,-10", "0.1,,2"]  # missing: mean takes the empty category
    printed = cli_predict(runner, mixed_run, texts)
    rows = tmp_path / "rows.csv"
    rows.write_text(mixed_rows(50, seed=3))
    expected = runner.invoke(cli, ["predict", str(mixed_run), "--input-file", str(rows)])
    server = Server(mixed_run, "--quiet")
    try:
        records = [{"x1": 0.5, "color": "red", "x2": 3}, {"x1": 1.5, "color": "blue", "x2": -10}]
        records.append({"x1": 0.1, "color": None, "x2": 2})
        answer = server.client.post("/predict", json={"records": records}).json()
        assert_same(answer["predictions"], printed)
        served = server.client.post("/predict/csv", content=rows.read_bytes())
        assert served.text == expected.stdout
    finally:
        assert server.stop() == 0


def test_limits_answer_413_and_503_naming_the_limit(seed_run):
    server = Server(
        seed_run, "--max-body", "2000", "--max-rows", "5", "--timeout", "0.5", "--quiet"
    )
    try:
        rows = server.client.post("/predict", json={"rows": [[3, 30, 5]] * 6})
        assert rows.status_code == 413 and "limit of 5 (--max-rows)" in rows.json()["error"]
        body = server.client.post("/predict", json={"rows": [[3.123456, 30.123456, 5]] * 100})
        assert body.status_code == 413 and "2,000 bytes (--max-body)" in body.json()["error"]
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as slow:  # a body that never comes
            slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n{")
            slow.settimeout(10)
            reply = b""
            while b"--timeout" not in reply and (part := slow.recv(4096)):
                reply += part
        reply = reply.decode()
        assert reply.startswith("HTTP/1.1 503") and "limit of 0.5 s (--timeout)" in reply
        # slowloris: heads that never end, on new and on kept-alive connections, used to hold
        # their connections for ever (uvicorn bounds only the idle time between requests)
        heads = [socket.create_connection((host, int(port))) for _ in range(20)]
        kept = socket.create_connection((host, int(port)))
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        health = b""
        while b'"ready"}' not in health:
            health += kept.recv(4096)
        assert health.startswith(b"HTTP/1.1 200")
        heads.append(kept)
        started = time.monotonic()
        for head in heads:
            head.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            head.settimeout(10)
        assert all(head.recv(4096) == b"" for head in heads)  # closed, with no answer
        assert time.monotonic() - started < 5
        for head in heads:
            head.close()
        with socket.create_connection((host, int(port))) as gone:  # a client that hangs up
            gone.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n{")
        assert server.client.post("/predict", json={"rows": [[3, 30, 5]] * 5}).status_code == 200
        time.sleep(0.2)
        assert not [line for line in server.lines if "Traceback" in line or "ERROR" in line]
    finally:
        assert server.stop() == 0


def test_a_token_protected_server_refuses_missing_and_wrong_tokens(seed_run):
    server = Server(seed_run, "--quiet", env={"CNNCLI_SERVE_TOKEN": "s3cret"})
    try:
        body = {"rows": [[3, 30, 5]]}
        missing = server.client.post("/predict", json=body)
        assert missing.status_code == 401 and "requires a bearer token" in missing.json()["error"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = server.client.post("/predict", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "token is wrong" in wrong.json()["error"]
        assert server.client.get("/metadata").status_code == 401
        right = server.client.post(
            "/predict", json=body, headers={"Authorization": "Bearer s3cret"}
        )
        assert right.status_code == 200 and right.json()["predictions"][0]["label"]
        assert server.client.get("/health").status_code == 200  # probes carry no token
    finally:
        assert server.stop() == 0


def test_sigterm_during_a_stream_of_requests_finishes_them_and_exits_0(seed_run):
    server = Server(seed_run, "--quiet", "--timeout", "20")
    statuses: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                try:
                    statuses.append(
                        client.post("/predict", json={"rows": [[3, 30, 5]]}).status_code
                    )
                except httpx.TransportError:  # not accepted: the server stopped listening
                    return

    body = seed_like_rows(20_000, seed=1).encode()
    head = f"POST /predict/csv HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    host, port = server.url.removeprefix("http://").split(":")
    with ThreadPoolExecutor(4) as pool, socket.create_connection((host, int(port))) as slow:
        streams = [pool.submit(stream) for _ in range(4)]
        deadline = time.monotonic() + 30
        while len(statuses) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        slow.sendall(head.encode() + body[:1000])  # in flight: half a body when SIGTERM comes
        time.sleep(0.3)
        started = time.perf_counter()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        slow.sendall(body[1000:])
        slow.settimeout(30)
        reply = b""
        while part := slow.recv(1 << 16):
            reply += part
        code = server.process.wait(timeout=30)
        waited = time.perf_counter() - started
        stop.set()
        for future in streams:
            future.result()
    assert server.stop() == 0
    assert code == 0 and waited < 21
    assert reply.startswith(b"HTTP/1.1 200") and reply.count(b"\n") > 20_000
    assert reply.endswith(b"\r\n0\r\n\r\n")  # the last chunk of a complete streamed answer
    assert len(statuses) >= 20 and set(statuses) == {200}
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/health", timeout=2)


def test_a_short_load_has_no_error_responses(seed_server):
    bodies = [{"rows": [[i % 10, 30 + i % 50, 5]]} for i in range(40)]

    def client(_: int) -> list[int]:
        with httpx.Client(base_url=seed_server.url, timeout=30) as session:
            return [session.post("/predict", json=bodies[i % 40]).status_code for i in range(500)]

    with ThreadPoolExecutor(4) as pool:
        codes = [code for codes in pool.map(client, range(4)) for code in codes]
    assert len(codes) == 2000 and set(codes) == {200}
    big = seed_server.client.post("/predict", json={"rows": [[3, 30, 5]] * 5000})
    assert big.status_code == 200 and len(big.json()["predictions"]) == 5000


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_two_workers_share_the_port_and_stop_at_sigterm(seed_run, stop, code):
    # SIGINT exited 0 with --workers: uvicorn's supervisor swallowed it
    server = Server(seed_run, "--workers", "2", "--quiet")
    try:
        deadline = time.monotonic() + 60
        while True:  # the workers load the run after the port is open
            try:
                answer = server.client.post("/predict", json={"rows": [[3, 30, 5]]})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] == "low"
    finally:
        assert server.stop(stop) == code


def test_a_run_failing_its_checks_never_starts_a_server(seed_run, tmp_path, runner):
    copy = tmp_path / "run"
    shutil.copytree(seed_run, copy)
    (copy / "preprocess.json").write_text((copy / "preprocess.json").read_text() + " ")
    result = runner.invoke(cli, ["serve", str(copy), "--port", "0"])
    assert result.exit_code == 2
    assert "preprocess.json" in error_lines(result)[0] and "serving" not in result.stderr
    empty = runner.invoke(cli, ["serve", str(seed_run), "--token", " "])
    assert empty.exit_code == 2 and error_lines(empty) == [
        "error: --token: the token is empty; give a secret, or leave --token and"
        " CNNCLI_SERVE_TOKEN unset"
    ]
    nowhere = runner.invoke(cli, ["serve", str(seed_run), "--host", ""])
    assert nowhere.exit_code == 2 and error_lines(nowhere)[0].startswith(
        "error: --host: the address is empty; give one, e.g. 127.0.0.1"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = runner.invoke(cli, ["serve", str(seed_run), "--port", str(port)])
    assert busy.exit_code == 2
    assert error_lines(busy)[0].startswith(f"error: 127.0.0.1:{port}: cannot listen there")


def test_serving_imports_no_tensorflow_keras_sklearn_or_pydantic(seed_run):
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from cnncli.serve.http import ServeSettings, build_app\n"
        f"build_app(ServeSettings(run={str(seed_run)!r}))\n"
        "heavy = ('tensorflow', 'keras', 'jax', 'sklearn', 'pydantic', 'fastapi')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_the_serve_extra_says_which_command_installs_it(seed_run):
    code = (
        "import sys\nsys.modules['uvicorn'] = None  # as if cnncli[serve] were not installed\n"
        f"from cnncli.cli import cli\ncli(['serve', {str(seed_run)!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == (
        "error: cnncli serve needs Starlette and uvicorn (uvicorn is not installed);"
        " install them with: pip install 'cnncli[serve]'\n"
    )
