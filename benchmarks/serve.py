"""`cnncli serve` under load against the service a Keras user writes by hand, in one run.

Both servers serve the same run on 127.0.0.1 and are measured by the same client: asyncio
keep-alive HTTP/1.1 connections on raw sockets (cheaper per request than an HTTP library, so
that on a small machine the client does not hide the server). Each phase is bounded in
requests and seconds. The anchor is FastAPI on uvicorn calling Keras' ``model.predict`` on the
run's ``model.keras`` after the run's own preprocessing (``transform_features``), the usual
hand-written service.

    python benchmarks/serve.py                    # trains configs/seed.yaml into a temp folder
    python benchmarks/serve.py runs/latest        # an existing run
    python benchmarks/serve.py --seconds 3        # shorter phases
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOAD_BEFORE = ""

#: The hand-written service: what a Keras user puts around ``model.predict``.
KERAS_SERVICE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import keras
    import numpy as np
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from cnncli.data.preprocess import Preprocessor, transform_features

    run = Path(sys.argv[1])
    pre = Preprocessor.from_json((run / "preprocess.json").read_text())
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    classes = [str(c) for c in pre.label.classes]
    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ready"}

    @app.post("/predict")
    async def predict(request: Request):
        rows = np.asarray((await request.json())["rows"], dtype=np.float64)
        columns = {f.name: rows[:, i] for i, f in enumerate(pre.features)}
        x = transform_features(pre, columns).reshape((-1, *pre.input_shape))
        probabilities = np.asarray(model.predict(x, verbose=0))
        return JSONResponse({"predictions": [
            {"label": classes[int(p.argmax())], "probabilities": dict(zip(classes, p.tolist()))}
            for p in probabilities
        ]})

    model.predict(np.zeros((1, *pre.input_shape)), verbose=0)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen, limit: float = 120.0) -> float:
    """Seconds until ``GET /health`` answers 200 (the process was started just before)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.005)
    raise SystemExit("server not ready in time")


def request_bytes(rows: list[list[float]]) -> bytes:
    """A keep-alive ``POST /predict`` of ``rows`` as JSON."""
    return post("/predict", "application/json", json.dumps({"rows": rows}).encode())


def csv_request_bytes(names: list[str], rows: np.ndarray) -> bytes:
    """A keep-alive ``POST /predict/csv`` of ``rows`` under a header of ``names``."""
    lines = [",".join(names)] + [",".join(map(repr, row)) for row in rows.tolist()]
    return post("/predict/csv", "text/csv", ("\n".join(lines) + "\n").encode())


def post(path: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def client(
    port: int, payload: bytes, deadline: float, budget: list[int], latencies: list[float]
) -> int:
    """One keep-alive connection sending ``payload`` until the deadline or the budget is spent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = -1
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length >= 0:
                await reader.readexactly(length)
            else:  # chunked: sizes in hex, a zero-size chunk ends it
                while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                    await reader.readexactly(size + 2)
                await reader.readuntil(b"\r\n")
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
    finally:
        writer.close()
    return errors


def load(port: int, payload: bytes, clients: int, seconds: float, requests: int) -> dict:
    """``clients`` connections for at most ``seconds`` and ``requests``: rate and latency."""

    async def run() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        budget = [requests]
        started = time.perf_counter()
        deadline = started + seconds
        errors = await asyncio.gather(
            *(client(port, payload, deadline, budget, latencies) for _ in range(clients))
        )
        return latencies, sum(errors), time.perf_counter() - started

    latencies, errors, wall = asyncio.run(run())
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "per_second": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


PHASES = ("1 client", "32 clients", "batches", "csv batches")


def measure(port: int, rows: np.ndarray, names: list[str], seconds: float, csv: bool) -> dict:
    """One server's figures: 1 and 32 clients single-row, 1,000-row batches (JSON, and CSV
    where the server has a CSV endpoint)."""
    single = request_bytes(rows[:1].tolist())
    load(port, single, 4, 0.5, 200)  # warm both ends
    results = {
        "1 client": load(port, single, 1, seconds, 20_000),
        "32 clients": load(port, single, 32, seconds, 100_000),
        "batches": load(port, request_bytes(rows[:1000].tolist()), 2, seconds, 2_000),
    }
    if csv:
        results["csv batches"] = load(port, csv_request_bytes(names, rows), 2, seconds, 2_000)
    for phase in ("batches", "csv batches"):
        if phase in results:
            results[phase]["rows_per_second"] = results[phase]["per_second"] * 1000
    return results


def start(command: list[str], port: int) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    return process, wait_ready(port, process)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a run folder (default: train seed)")
    parser.add_argument("--seconds", type=float, default=5.0, help="longest phase")
    args = parser.parse_args()
    global LOAD_BEFORE
    LOAD_BEFORE = f"{os.getloadavg()[0]:.1f}"
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run
        if run is None:
            subprocess.run(
                [sys.executable, "-m", "cnncli", "train", str(ROOT / "configs/seed.yaml"),
                 "--output", scratch, "--json"],
                check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
            run = Path(scratch) / "latest"
        run = run.resolve()
        pre = json.loads((run / "preprocess.json").read_text())
        rng = np.random.default_rng(0)
        rows = np.round(
            rng.uniform(
                [f.get("minimum", 0) or 0 for f in pre["features"]],
                [f.get("maximum", 1) or 1 for f in pre["features"]],
                size=(1000, len(pre["features"])),
            ),
            3,
        )
        names = [f["name"] for f in pre["features"]]
        results = {}
        port = free_port()
        process, ready = start(
            [sys.executable, "-m", "cnncli", "serve", str(run), "--port", str(port), "--quiet"],
            port,
        )
        try:
            results["cnncli serve"] = {
                "ready_s": ready,
                **measure(port, rows, names, args.seconds, csv=True),
            }
        finally:
            stop(process)
        script = Path(scratch) / "keras_service.py"
        script.write_text(KERAS_SERVICE)
        port = free_port()
        process, ready = start([sys.executable, str(script), str(run), str(port)], port)
        try:
            results["Keras + FastAPI"] = {
                "ready_s": ready,
                **measure(port, rows, names, args.seconds, csv=False),
            }
        finally:
            stop(process)
    ours, theirs = results["cnncli serve"], results["Keras + FastAPI"]
    print(f"`python benchmarks/serve.py` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print()
    print("| | cnncli serve | Keras + FastAPI | ratio |")
    print("| --- | ---: | ---: | ---: |")

    def row(name: str, a: float, b: float, unit: str, higher_is_better: bool = True) -> None:
        ratio = a / b if higher_is_better else b / a
        print(f"| {name} | {a:,.1f} {unit} | {b:,.1f} {unit} | {ratio:,.1f}× |")

    for clients in ("1 client", "32 clients"):
        row(f"{clients}, single row: requests/s", ours[clients]["per_second"],
            theirs[clients]["per_second"], "")  # fmt: skip
        for key in ("p50_ms", "p99_ms"):
            row(f"{clients}, single row: {key[:3]}", ours[clients][key], theirs[clients][key],
                "ms", higher_is_better=False)  # fmt: skip
    row("1,000-row JSON batches: rows/s", ours["batches"]["rows_per_second"],
        theirs["batches"]["rows_per_second"], "")  # fmt: skip
    row("1,000-row CSV batches (theirs: JSON): rows/s", ours["csv batches"]["rows_per_second"],
        theirs["batches"]["rows_per_second"], "")  # fmt: skip
    row("start-up to ready", ours["ready_s"], theirs["ready_s"], "s", higher_is_better=False)
    print()
    for name, result in results.items():
        phases = [result[phase] for phase in PHASES if phase in result]
        print(f"{name}: {sum(p['requests'] for p in phases):,} requests,"
              f" {sum(p['errors'] for p in phases)} error responses")  # fmt: skip
    print(f"load average before and after: {LOAD_BEFORE} / {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
