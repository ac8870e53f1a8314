"""cnncli/render.py: what a person sees, on a terminal and in a log file."""

from __future__ import annotations

import io

from rich.console import Console

from cnncli.render import EpochProgress


def test_progress_in_a_log_file_is_plain_lines_a_tenth_of_the_run_apart():
    """In a log that is not a terminal the bar read 'epoch  …   0…'."""
    log = io.StringIO()
    progress = EpochProgress(Console(file=log, force_terminal=False, width=200))
    for epoch in range(1, 21):
        progress(epoch, 20, {"loss": 1.0 / epoch, "accuracy": 0.5})
    lines = log.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == [
        f"epoch {n}/20" for n in (1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20)
    ]
    assert lines[-1].startswith("epoch 20/20  loss 0.05")
    assert "…" not in log.getvalue()


def test_a_fit_that_stops_early_shows_the_epoch_it_stopped_at():
    """EarlyStopping at epoch 7 of 20: the log showed epochs 1, 2, 4 and 6 only."""
    log = io.StringIO()
    progress = EpochProgress(Console(file=log, force_terminal=False, width=200))
    for epoch in range(1, 8):
        progress(epoch, 20, {"loss": 1.0 / epoch})
    progress.close()
    progress.close()  # the CLI closes on every way out; the line is shown once
    lines = log.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == [f"epoch {n}/20" for n in (1, 2, 4, 6, 7)]


def test_a_terminal_narrower_than_the_minimum_still_shows_every_value():
    """Hostile review: ``COLUMNS=5`` on a terminal drew every table with empty cells."""
    from cnncli.render import MIN_TERMINAL_WIDTH, _LazyConsole, _metrics_table

    screen = io.StringIO()
    console = _LazyConsole(file=screen, force_terminal=True, color_system=None, width=5)
    console.print(_metrics_table({"test": {"accuracy": 0.9123, "loss": 0.25}}, "Results"))
    text = screen.getvalue()
    assert console.width == MIN_TERMINAL_WIDTH
    assert "accuracy" in text and "0.9123" in text and "0.2500" in text and "…" not in text


def test_columns_5_on_a_real_terminal_prints_whole_tables(tmp_path):
    """The same through ``cnncli validate`` on a pseudo-terminal with ``COLUMNS=5``."""
    import os
    import pty
    import subprocess
    import sys

    from tests.conftest import CONFIGS

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cnncli", "validate", str(CONFIGS / "seed.yaml")],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "5", "TERM": "xterm"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = b"".join(chunks).decode()
    for cell in ("Conv1D", "Dense", "4,160", "256", "total parameters: 4,611"):
        assert cell in text  # at width 5 every cell of the table was empty
