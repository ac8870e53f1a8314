"""Rewrite an exported ONNX graph so ONNX Runtime runs it fast, without changing its results.

tf2onnx writes a Keras Conv1D as ExpandDims → Conv → Squeeze → Add(bias) → Relu, and a
MaxPooling1D as ExpandDims → MaxPool → Squeeze. The Squeeze between Conv and its bias stops
ONNX Runtime from fusing them, and the broadcast Add it leaves behind was most of the seed
model's inference time. A graph written channels-last puts Transposes there
instead, and a 1-D Conv misses ONNX Runtime's fast 2-D path altogether. The rewrites below
run 1-D convolution and pooling as 2-D on a height of 1, fold a per-channel bias into Conv,
move elementwise activations in front of layout ops, and drop layout ops that undo each
other. Each is exact in real arithmetic; other kernels may round the last bit differently,
and the result is checked against Keras like any export.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_ELEMENTWISE = {
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Elu",
    "Selu",
    "HardSigmoid",
    "Softplus",
    "Softsign",
}
#: Ops that only move values around, which an elementwise op can run before.
_LAYOUT = {"Squeeze", "Unsqueeze", "Transpose", "Reshape", "Flatten"}


def simplify_onnx(model: Any) -> Any:
    """Rewrite an ``onnx.ModelProto`` in place until no rule applies; returns it."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    while _widen_1d(graph, opset):
        pass
    rules = (_fold_conv_bias, _hoist_activation, _cancel_squeeze, _cancel_transposes)
    while any(rule(graph) for rule in rules):
        pass
    _sort_nodes(graph)
    used = {name for node in graph.node for name in node.input}
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)
    return model


def _consumers(graph: Any, name: str) -> list[Any]:
    return [node for node in graph.node if name in node.input]


def _fresh_name(graph: Any, node: Any, suffix: str) -> str:
    """A tensor name not used yet, derived from ``node``'s output (node names may be empty)."""
    taken = {name for n in graph.node for name in (*n.input, *n.output)}
    taken |= {i.name for i in graph.initializer} | {v.name for v in graph.input}
    base, count = f"{node.output[0]}/{suffix}", 1
    name = base
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def _graph_outputs(graph: Any) -> set[str]:
    return {output.name for output in graph.output}


def _only_consumer(graph: Any, name: str) -> Any | None:
    users = _consumers(graph, name)
    return users[0] if len(users) == 1 and name not in _graph_outputs(graph) else None


def _constant(graph: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for initializer in graph.initializer:
        if initializer.name == name:
            return numpy_helper.to_array(initializer)
    return None


def _axes(graph: Any, node: Any) -> tuple[int, ...] | None:
    """A Squeeze/Unsqueeze node's axes, from its attribute (opset < 13) or constant input."""
    for attribute in node.attribute:
        if attribute.name == "axes":
            return tuple(attribute.ints)
    if len(node.input) > 1:
        values = _constant(graph, node.input[1])
        return None if values is None else tuple(int(v) for v in values.reshape(-1))
    return None


def _rename_input(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = new


def _widen_1d(graph: Any, opset: int) -> bool:
    """A 1-D Conv or pooling ⇒ Unsqueeze → the 2-D op on height 1 → Squeeze.

    ONNX Runtime's fast convolution path (the blocked NCHWc layout) takes only 2-D operators; a
    1-D Conv runs through its generic path, several times slower.
    """
    from onnx import helper, numpy_helper

    for node in graph.node:
        if node.op_type not in ("Conv", "MaxPool", "AveragePool") or len(node.output) != 1:
            continue
        weights = _constant(graph, node.input[1]) if node.op_type == "Conv" else None
        kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), None)
        if (weights is None or weights.ndim != 3) if node.op_type == "Conv" else kernel is None:
            continue
        if kernel is not None and len(kernel) != 1:
            continue
        if weights is not None:
            name = _fresh_name(graph, node, "weights_2d")
            graph.initializer.append(numpy_helper.from_array(weights[:, :, None, :], name))
            node.input[1] = name
        for attribute in node.attribute:
            if attribute.name in ("kernel_shape", "strides", "dilations"):
                values = [1, *attribute.ints]
            elif attribute.name == "pads":
                values = [0, attribute.ints[0], 0, attribute.ints[1]]
            else:
                continue
            del attribute.ints[:]
            attribute.ints.extend(values)
        flat_in, flat_out = node.input[0], node.output[0]
        wide_in, wide_out = _fresh_name(graph, node, "in_2d"), _fresh_name(graph, node, "out_2d")
        node.input[0], node.output[0] = wide_in, wide_out
        if opset >= 13:
            axes = _fresh_name(graph, node, "height_axis")
            graph.initializer.append(numpy_helper.from_array(np.asarray([2], np.int64), axes))
            before = helper.make_node("Unsqueeze", [flat_in, axes], [wide_in])
            after = helper.make_node("Squeeze", [wide_out, axes], [flat_out])
        else:
            before = helper.make_node("Unsqueeze", [flat_in], [wide_in], axes=[2])
            after = helper.make_node("Squeeze", [wide_out], [flat_out], axes=[2])
        graph.node.extend([before, after])
        _sort_nodes(graph)
        return True
    return False


def _fold_conv_bias(graph: Any) -> bool:
    """Conv (no bias) [→ Squeeze of spatial axes] → Add(per-channel constant) ⇒ Conv with bias."""
    from onnx import numpy_helper

    for conv in graph.node:
        if conv.op_type != "Conv" or len(conv.input) > 2:
            continue
        weights = _constant(graph, conv.input[1])
        after = _only_consumer(graph, conv.output[0])
        if weights is None or after is None:
            continue
        squeeze = None
        if after.op_type == "Squeeze":
            axes = _axes(graph, after)
            if axes is None or any(axis in (0, 1) or axis < 0 for axis in axes):
                continue
            squeeze, after = after, _only_consumer(graph, after.output[0])
        if after is None or after.op_type != "Add":
            continue
        source = (squeeze or conv).output[0]
        other = after.input[1] if after.input[0] == source else after.input[0]
        bias = _constant(graph, other)
        channels = weights.shape[0]
        rank = len(weights.shape) - (len(_axes(graph, squeeze) or ()) if squeeze else 0)
        if bias is None or bias.size != channels or bias.ndim > rank:
            continue
        shape = (1,) * (rank - bias.ndim) + bias.shape
        if (channels > 1 and shape[1] != channels) or after.output[0] in _graph_outputs(graph):
            continue
        name = _fresh_name(graph, conv, "folded_bias")
        graph.initializer.append(
            numpy_helper.from_array(bias.reshape(channels).astype(weights.dtype), name)
        )
        conv.input.append(name)
        _rename_input(graph, after.output[0], source)
        graph.node.remove(after)
        return True
    return False


def _hoist_activation(graph: Any) -> bool:
    """Layout op → elementwise activation ⇒ activation → layout op (so it can fuse with a Conv)."""
    for squeeze in graph.node:
        if squeeze.op_type not in _LAYOUT:
            continue
        activation = _only_consumer(graph, squeeze.output[0])
        if activation is None or activation.op_type not in _ELEMENTWISE:
            continue
        source, squeezed, result = squeeze.input[0], squeeze.output[0], activation.output[0]
        activation.input[0], activation.output[0] = source, squeezed
        squeeze.input[0], squeeze.output[0] = squeezed, result
        return True
    return False


def _cancel_transposes(graph: Any) -> bool:
    """Transpose(perm) → Transpose(its inverse) ⇒ nothing."""
    for first in graph.node:
        second = _only_consumer(graph, first.output[0]) if first.op_type == "Transpose" else None
        if second is None or second.op_type != "Transpose":
            continue
        outer, inner = _perm(first), _perm(second)
        if outer is None or inner is None or [outer[i] for i in inner] != list(range(len(inner))):
            continue
        if _drop_pair(graph, first, second):
            return True
    return False


def _perm(node: Any) -> list[int] | None:
    for attribute in node.attribute:
        if attribute.name == "perm":
            return list(attribute.ints)
    return None  # the default reverses the axes; rank unknown here


def _cancel_squeeze(graph: Any) -> bool:
    """Squeeze(axes) → Unsqueeze(same axes) ⇒ nothing."""
    for squeeze in graph.node:
        if squeeze.op_type != "Squeeze":
            continue
        unsqueeze = _only_consumer(graph, squeeze.output[0])
        if (
            unsqueeze is None
            or unsqueeze.op_type != "Unsqueeze"
            or unsqueeze.input[0] != squeeze.output[0]
        ):
            continue
        axes, restored = _axes(graph, squeeze), _axes(graph, unsqueeze)
        if (
            axes is None
            or restored is None
            or sorted(axes) != sorted(restored)
            or min(axes, default=-1) < 0
        ):
            continue
        if _drop_pair(graph, squeeze, unsqueeze):
            return True
    return False


def _drop_pair(graph: Any, first: Any, second: Any) -> bool:
    """Remove two nodes that undo each other, wiring ``first``'s input to ``second``'s users."""
    if second.output[0] in _graph_outputs(graph):
        return False  # a graph output keeps its name
    _rename_input(graph, second.output[0], first.input[0])
    graph.node.remove(first)
    graph.node.remove(second)
    return True


def _sort_nodes(graph: Any) -> None:
    """Topological order, which ONNX requires and the rewrites may have broken."""
    ready = (
        {value.name for value in graph.input} | {value.name for value in graph.initializer} | {""}
    )
    pending, ordered = list(graph.node), []
    while pending:
        node = next((n for n in pending if all(name in ready for name in n.input)), None)
        if node is None:  # a cycle or a dangling input: keep the original order
            return
        pending.remove(node)
        ordered.append(node)
        ready.update(node.output)
    del graph.node[:]
    graph.node.extend(ordered)
