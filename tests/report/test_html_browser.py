"""``report --html`` opened in a real headless Chromium, driven over the DevTools protocol.

The page is checked from inside the browser: the metrics table shows the run's scores, every
image has loaded with a real width, and the page asked the network for nothing (the DevTools
``Network`` domain sees every request, ``data:`` images included). ``.ci/run`` installs Debian's
``chromium`` where it is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cnncli.cli import cli
from cnncli.runs import PLOT_FILENAMES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: The flags that keep a headless Chromium off the network on its own account (updates, sync,
#: QUIC probes), so that any request seen is the page's.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)
#: What the page reports about itself once loaded.
PAGE_FACTS = """JSON.stringify({
  images: Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth})),
  metrics: Array.from(document.querySelectorAll('#metrics tr')).map(
    row => Array.from(row.cells).map(cell => cell.textContent)),
  status: document.getElementById('status').textContent,
})"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed: .ci/run installs Debian's chromium with apt-get;"
        " here, run apt-get install -y chromium",
    ),
]


class DevTools:
    """One page of a browser over the DevTools protocol: commands, and the events seen."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(seen.get("method") == event for seen in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=deadline - time.monotonic())))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    """A fresh headless Chromium (its own profile folder) and a connection to its blank page."""
    from websockets.sync.client import connect

    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            assert process.poll() is None, "chromium exited before it listened"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
            [page] = [target for target in json.load(answer) if target["type"] == "page"]
        with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            yield DevTools(socket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_html_report_loads_in_chromium_whole_and_offline(runner, tiny_run, tmp_path, browser):
    page = tmp_path / "report.html"
    result = runner.invoke(cli, ["report", str(tiny_run), "--html", str(page)])
    assert result.exit_code == 0, result.output
    url = page.resolve().as_uri()

    browser.call("Network.enable")
    browser.call("Page.enable")
    browser.call("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")
    facts = json.loads(browser.call("Runtime.evaluate", expression=PAGE_FACTS)["result"]["value"])
    time.sleep(0.5)  # anything the page fetched late would show up now
    browser.call("Runtime.evaluate", expression="1")

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    header, test_row = facts["metrics"][0], facts["metrics"][1]
    assert test_row[0] == "test"
    assert test_row[header.index("accuracy")] == f"{metrics['test']['accuracy']:.4f}"
    assert test_row[header.index("loss")] == f"{metrics['test']['loss']:.4f}"
    assert facts["status"] == "complete"
    plots = [name for name in PLOT_FILENAMES if (tiny_run / name).exists()]
    assert len(facts["images"]) == len(plots) == 4
    assert all(image["complete"] and image["width"] > 0 for image in facts["images"])

    requested = [
        event["params"]["request"]["url"]
        for event in browser.events
        if event.get("method") == "Network.requestWillBeSent"
    ]
    assert url in requested  # the protocol saw the page's own load, so it was watching
    network = [
        address for address in requested if address != url and not address.startswith("data:")
    ]
    assert network == []
