"""Per-epoch checkpoints, resume, and a graceful stop on Ctrl-C (SIGINT) or SIGTERM.

A run in progress lives in its hidden staging folder ``<output>/.tmp-<name>-<stamp>-<random>/``
(see ``runs.start_run``); it becomes ``<output>/<name>-<stamp>/`` only when complete. Its
``checkpoints/`` folder holds one checkpoint (``store``). ``resume`` finds an interrupted run and
checks that the config and data are the ones it started with; ``signals`` turns SIGINT/SIGTERM
into a clean stop and the one-line message with the resume command; ``callback`` snapshots each
epoch; ``keeper`` owns the staging folder while the run trains and ties the four together.

With a fixed seed, resuming gives bit-identical weights to an uninterrupted run: the model is
rebuilt from the same seed, every variable and RNG state is restored, and Keras' shuffling on
the TensorFlow backend draws the same order for an epoch whatever the epoch number.
"""

from cnncli.train.checkpoints.keeper import CheckpointKeeper
from cnncli.train.checkpoints.resume import comparable_config, interrupted_runs, resume_point
from cnncli.train.checkpoints.signals import TrainingInterrupted
from cnncli.train.checkpoints.store import Checkpoint, load_checkpoint

__all__ = [
    "Checkpoint",
    "CheckpointKeeper",
    "TrainingInterrupted",
    "comparable_config",
    "interrupted_runs",
    "load_checkpoint",
    "resume_point",
]
