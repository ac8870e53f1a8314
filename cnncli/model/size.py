"""How much memory training a model needs, from its layers' shapes, without building it.

A layer's ``build`` is run with ``add_weight`` recording each weight's shape instead of allocating
it, so a ``Dense`` of 2**20 units after another costs nothing to count (building it would ask for
4 TB). ``validate``, ``summary`` and ``train`` refuse a model whose estimate is over the memory
the machine has available, before anything is allocated.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: float32 weights.
BYTES_PER_VALUE = 4
#: Copies of each trainable weight while training: the weight, its gradient and the optimizer's
#: two moments (Adam; SGD keeps fewer). Non-trainable weights (BatchNormalization's moving
#: statistics) are one copy.
TRAINABLE_COPIES = 4
#: Copies of each layer's output per batch row: the forward value and its gradient.
ACTIVATION_COPIES = 2


@dataclass(frozen=True)
class MemoryEstimate:
    """Parameters per layer and the bytes that training them needs."""

    trainable: list[int]
    frozen: list[int]
    activation_values: int  # one row's layer outputs, summed over the layers

    @property
    def parameters(self) -> int:
        return sum(self.trainable) + sum(self.frozen)

    def training_bytes(self, batch_size: int) -> int:
        return self.weight_bytes + self.batch_bytes(batch_size)

    @property
    def weight_bytes(self) -> int:
        """Weights, gradients and optimizer state: what the batch size does not change."""
        return BYTES_PER_VALUE * (TRAINABLE_COPIES * sum(self.trainable) + sum(self.frozen))

    def batch_bytes(self, batch_size: int) -> int:
        """One batch's layer outputs and their gradients."""
        return BYTES_PER_VALUE * ACTIVATION_COPIES * batch_size * self.activation_values

    @property
    def largest(self) -> int:
        """Index of the layer with the most parameters."""
        counts = [a + b for a, b in zip(self.trainable, self.frozen, strict=True)]
        return max(range(len(counts)), key=counts.__getitem__)


def estimate_memory(
    keras: Any,
    layers: list[Any],
    input_shape: tuple[Any, ...],
    inputs: list[list[tuple[Any, ...]]] | None = None,
) -> MemoryEstimate:
    """Count each layer's parameters by a build that allocates nothing.

    Args:
        keras: the imported Keras module.
        layers: unbuilt layers, in order (copies are built; these stay unbuilt).
        input_shape: the model's input shape without the batch dimension.
        inputs: a graph's input shapes per layer (one per input of a merge), from
            ``train.check.propagate_shapes``; a stack's follow from ``input_shape``.

    A layer whose build needs real weights (none of Keras' large ones do) counts as 0.
    """
    trainable: list[int] = []
    frozen: list[int] = []
    activations = 0
    shape: tuple[Any, ...] = (None, *input_shape)
    for index, layer in enumerate(layers):
        counted = {True: 0, False: 0}
        copy = type(layer).from_config(layer.get_config())
        if inputs is not None:
            shape = inputs[index][0] if len(inputs[index]) == 1 else inputs[index]
        try:
            with _weights_recorded(keras, counted):
                copy.build(shape)
        except Exception:  # noqa: BLE001, S110 - a build we cannot dry-run counts as 0
            pass
        trainable.append(counted[True])
        frozen.append(counted[False])
        shape = tuple(layer.compute_output_shape(shape))
        activations += _size(shape[1:])
    return MemoryEstimate(trainable, frozen, activations)


@contextmanager
def _weights_recorded(keras: Any, counted: dict[bool, int]) -> Iterator[None]:
    """While inside, ``Layer.add_weight`` adds the weight's size to ``counted`` and returns a
    symbolic tensor of its shape instead of a variable."""
    layer_class = keras.layers.Layer
    original = layer_class.add_weight
    signature = inspect.signature(original)

    def add_weight(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        shape = tuple(int(dim) for dim in (bound.arguments["shape"] or ()))
        counted[bool(bound.arguments["trainable"])] += _size(shape)
        return keras.KerasTensor(shape, dtype=bound.arguments["dtype"] or "float32")

    layer_class.add_weight = add_weight
    try:
        yield
    finally:
        layer_class.add_weight = original


def _size(shape: tuple[Any, ...]) -> int:
    size = 1
    for dim in shape:
        size *= int(dim) if dim is not None else 1
    return size


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable``), else all physical memory; None if
    neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def human_bytes(count: float) -> str:
    """``17.6 TB``: decimal units, three significant digits."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.3g} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000
    raise AssertionError("unreachable")
