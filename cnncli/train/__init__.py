"""One training run: every check short of training (``check``), the run itself (``run``), the
data handed to Keras (``feed``), and checkpoints with resume and signal handling
(``checkpoints``). Imports everything below it.
"""
