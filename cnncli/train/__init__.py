"""One training run: every check short of training (``check``), the run itself (``run``), and
checkpoints with resume and signal handling (``checkpoints``). Imports everything below it.
"""
