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
