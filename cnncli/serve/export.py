"""Export a trained Keras model to ONNX (checked against Keras) and other serving formats.

Training calls ``export_onnx_checked`` to write the run's ``model.onnx``; ``cnncli export`` calls
``export_run`` to hand a model to a server written in anything: ONNX with the preprocessing in
its metadata, a TensorFlow SavedModel, or a LiteRT (``.tflite``) flat buffer, the last two with a
``preprocess.json`` beside them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cnncli import __version__
from cnncli.errors import CnnCliError, Location
from cnncli.runs import ONNX_FILENAME, PREPROCESS_FILENAME, RunFolder, load_keras_model

#: ONNX and Keras outputs on the test split must agree this closely for predict to use ONNX.
ONNX_TOLERANCE = 1e-5
_CHECK_ROWS = 10_000

EXPORT_FORMATS = ("onnx", "saved_model", "litert")
#: Keys of the ONNX ``metadata_props`` that carry the preprocessing.
METADATA_PREPROCESS = "cnncli.preprocess"
METADATA_RECIPE = "cnncli.recipe"
METADATA_VERSION = "cnncli.version"
PREPROCESS_RECIPE = (
    "Build the model input from one CSV row, in the order of preprocess.features: a numeric feature"
    " becomes (value - center) / scale, an empty cell first replaced by fill when fill is not null;"
    " a categorical feature becomes one 0/1 entry per category (all zeros for an unseen value)."
    " Compute in float64, cast to float32, reshape to input_shape with a leading batch axis."
    " Outputs: label.kind onehot or sparse gives one probability per label.classes entry (argmax"
    " is the label); binary gives P(label.classes[1]); none gives the value; standard gives"
    " value * label.scale + label.center."
)


def export_onnx_checked(model: Any, path: Path, x_check: np.ndarray) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` and compare it with Keras on ``x_check``.

    Returns:
        A manifest entry: ``checked`` (bool), ``max_abs_diff``, ``rows`` and ``reason`` when the
        export or the check failed. A failed export leaves no file behind.
    """
    sample = np.asarray(x_check[:_CHECK_ROWS], dtype=np.float32)
    try:
        export_onnx(model, path)
        from cnncli.serve.onnxrun import OnnxModel

        onnx_out = OnnxModel(path).predict(sample)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "use Keras"
        path.unlink(missing_ok=True)
        return {
            "checked": False,
            "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        }
    keras_out = np.asarray(model.predict(sample, batch_size=1024, verbose=0))
    diff = float(np.max(np.abs(onnx_out - keras_out))) if len(sample) else 0.0
    same_argmax = bool(
        len(sample) == 0
        or keras_out.shape[1] == 1
        or np.array_equal(onnx_out.argmax(1), keras_out.argmax(1))
    )
    checked = diff <= ONNX_TOLERANCE and same_argmax
    entry: dict[str, Any] = {
        "checked": checked,
        "max_abs_diff": diff,
        "same_argmax": same_argmax,
        "rows": len(sample),
    }
    if not checked:
        path.unlink(missing_ok=True)
        entry["reason"] = f"ONNX differs from Keras by {diff:.2e} (limit {ONNX_TOLERANCE:.0e})"
    return entry


def export_onnx(model: Any, path: Path) -> None:
    """Write ``model`` as ONNX, then simplify the graph for speed.

    Common layers are written directly (``onnxgraph``: no TensorFlow import, any backend); other
    stacks go through Keras' exporter.
    """
    import onnx

    from cnncli.serve.onnxgraph import sequential_onnx

    proto = sequential_onnx(model)
    if proto is None:
        with _quiet("tf2onnx"):
            model.export(str(path), format="onnx", verbose=False)
        proto = onnx.load(str(path))
    onnx.save(simplify_onnx(proto), str(path))


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Keep an exporter's prints, warnings and log lines off the user's terminal."""
    sink = io.StringIO()
    previous = logging.getLogger(logger).level
    logging.getLogger(logger).setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger(logger).setLevel(previous)


# ---------------------------------------------------------------------------------------------
# cnncli export


def default_export_path(run: RunFolder, fmt: str) -> Path:
    """``<run name>.onnx``, ``<run name>.saved_model`` or ``<run name>.tflite`` here."""
    suffix = {"onnx": ".onnx", "saved_model": ".saved_model", "litert": ".tflite"}[fmt]
    return Path(run.path.name + suffix)


def export_run(run: RunFolder, fmt: str, output: Path | None = None) -> list[Path]:
    """Write a run's model in ``fmt`` for serving elsewhere, with its preprocessing.

    Args:
        run: an opened run folder.
        fmt: ``onnx``, ``saved_model`` or ``litert``.
        output: where to write; defaults to ``default_export_path``. It must not exist yet.

    Returns:
        The paths written: the model, then the ``preprocess.json`` sidecar where there is one.

    Raises:
        CnnCliError: unknown format, ``output`` exists, no checked ONNX model, or no converter.
    """
    if fmt not in EXPORT_FORMATS:
        raise CnnCliError(
            f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(EXPORT_FORMATS)}"
        )
    path = output or default_export_path(run, fmt)
    if fmt == "litert" and path.suffix != ".tflite":
        raise CnnCliError(
            "a LiteRT model file must end in .tflite",
            where=Location(file=str(path)),
            hint="pass --output model.tflite",
        )
    sidecar = (
        path.with_name(path.name + ".preprocess.json")
        if fmt == "litert"
        else path / PREPROCESS_FILENAME
    )
    for target in [path] + ([sidecar] if fmt == "litert" else []):
        if target.exists():
            raise CnnCliError(
                "already exists",
                where=Location(file=str(target)),
                hint="remove it or choose another --output",
            )
    if not path.parent.is_dir():
        raise CnnCliError(
            "folder does not exist",
            where=Location(file=str(path.parent)),
            hint="create it or choose another --output",
        )
    if fmt == "onnx":
        write_onnx_with_metadata(run, path)
        return [path]
    _select_tensorflow()  # before TensorFlow is imported: it imports Keras
    if fmt == "litert":
        _require_litert_converter()
    model = load_keras_model(run)
    if fmt == "saved_model":
        with _quiet("tensorflow"):
            model.export(str(path), format="tf_saved_model", verbose=False)
    else:
        export_litert(model, path)
    sidecar.write_text(run.preprocessor.to_json() + "\n")
    return [path, sidecar]


def _select_tensorflow() -> None:
    """Keras on the TensorFlow backend, which both converters need (a run may train on JAX)."""
    from cnncli.runtime import select_backend

    backend = select_backend("tensorflow")
    if backend != "tensorflow":  # Keras was already imported on another backend here
        raise CnnCliError(
            f"SavedModel and LiteRT export need Keras on TensorFlow; this process runs {backend}",
            hint="run `cnncli export` on its own",
        )


def write_onnx_with_metadata(run: RunFolder, path: Path) -> None:
    """Copy the run's checked ``model.onnx`` with the preprocessing in ``metadata_props``."""
    if not run.onnx_ok:
        reason = run.manifest.get("onnx", {}).get("reason", "it was not exported")
        raise CnnCliError(
            f"this run has no checked model.onnx ({reason})",
            where=Location(file=str(run.path)),
            hint="export --format saved_model or litert instead",
        )
    import onnx

    model = onnx.load(str(run.file(ONNX_FILENAME)))
    entries = {
        METADATA_PREPROCESS: json.dumps(
            json.loads(run.preprocessor.to_json()), separators=(",", ":")
        ),
        METADATA_RECIPE: PREPROCESS_RECIPE,
        METADATA_VERSION: __version__,
    }
    kept = [prop for prop in model.metadata_props if prop.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"Exported by cnncli {__version__} from {run.path.name}. {PREPROCESS_RECIPE}"
    temp = path.with_name(f".{path.name}.part")
    try:
        onnx.save(model, str(temp))
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _require_litert_converter() -> None:
    """Fail early, in one line, where TensorFlow's TFLite converter is missing."""
    try:
        import tensorflow as tf

        tf.lite.TFLiteConverter  # noqa: B018 - newer TensorFlow builds may ship without it
    except (ImportError, AttributeError) as exc:
        raise CnnCliError(
            "LiteRT export needs TensorFlow's TFLite converter, which this installation lacks",
            hint="install it: pip install 'tensorflow-cpu>=2.18' (or 'cnncli[cpu]')",
        ) from exc


def export_litert(model: Any, path: Path) -> None:
    """Convert to LiteRT through TensorFlow's converter (Keras' ``format="litert"``)."""
    _require_litert_converter()
    try:
        with _quiet("tensorflow"):
            model.export(str(path), format="litert", verbose=False)
    except Exception as exc:  # the converter raises many types for ops it cannot handle
        path.unlink(missing_ok=True)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CnnCliError(
            f"LiteRT conversion failed: {detail}",
            where=Location(file=str(path)),
            hint="export --format onnx or saved_model instead",
        ) from exc


# ---------------------------------------------------------------------------------------------
# Graph simplification
#
# tf2onnx writes a Keras Conv1D as ExpandDims → Conv → Squeeze → Add(bias) → Relu, and a
# MaxPooling1D as ExpandDims → MaxPool → Squeeze. The Squeeze between Conv and its bias stops
# ONNX Runtime from fusing them, and the broadcast Add it leaves behind was most of the seed
# model's inference time. A graph written channels-last puts Transposes there
# instead, and a 1-D Conv misses ONNX Runtime's fast 2-D path altogether. The rewrites below
# run 1-D convolution and pooling as 2-D on a height of 1, fold a per-channel bias into Conv,
# move elementwise activations in front of layout ops, and drop layout ops that undo each
# other. Each is exact in real arithmetic; other kernels may round the last bit differently,
# and the result is checked against Keras like any export.

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
