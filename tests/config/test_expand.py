"""Blocks, repeats and graph nodes expanded before any check or build (no Keras here)."""

from __future__ import annotations

from typing import Any

import pytest

from cnncli.config.expand import INPUT, expand_model
from cnncli.config.models import config_from_dict, load_config
from cnncli.errors import CnnCliError
from tests.conftest import base_config, problems_of

CONV_BN = {
    "params": ["filters", "kernel_size"],
    "layers": [
        {"type": "Conv1D", "filters": "$filters", "kernel_size": "$kernel_size"},
        {"type": "BatchNormalization", "momentum": 0.9},
        {"type": "Activation", "activation": "relu"},
    ],
}
HEAD = {"type": "Dense", "units": "auto", "activation": "softmax"}


def model_config(tiny_csv: Any, **model: Any) -> dict[str, Any]:
    return base_config(tiny_csv, model={"input_shape": [3, 1], **model})


def test_a_stack_of_blocks_stays_a_stack_with_params_filled_and_repeats(tiny_csv, write_config):
    config = model_config(
        tiny_csv,
        blocks={"conv_bn": CONV_BN},
        layers=[
            {"block": "conv_bn", "filters": 8, "kernel_size": 3, "repeat": 2},
            {"type": "Dense", "units": 4, "repeat": 3},
            HEAD,
        ],
    )
    plan = expand_model(load_config(write_config(config)))
    assert not plan.is_graph
    assert [node.spec.type for node in plan.nodes] == [
        *["Conv1D", "BatchNormalization", "Activation"] * 2,
        *["Dense"] * 4,
    ]
    assert [node.spec.args.get("filters") for node in plan.nodes[:6:3]] == [8, 8]
    assert all("repeat" not in node.spec.args for node in plan.nodes)
    names = [node.name for node in plan.nodes]
    assert names[0] == "conv1_d_0" and len(set(names)) == len(names)
    assert [node.inputs for node in plan.nodes[:2]] == [(INPUT,), ("conv1_d_0",)]


def test_a_value_from_a_use_is_located_at_the_use_and_others_at_the_definition(
    tiny_csv, write_config
):
    text = f"""\
name: located
seed: 0
data: {{path: {tiny_csv}}}
model:
  input_shape: [3, 1]
  blocks:
    outer:
      params: [width]
      layers:
        - {{block: inner, size: $width}}
    inner:
      params: [size]
      layers:
        - {{type: Conv1D, filters: $size, kernel_size: 2}}
  layers:
    - Flatten
    - {{block: outer, width: 16}}
    - {{type: Dense, units: auto, activation: softmax}}
"""
    plan = expand_model(load_config(write_config(text)))
    conv = plan.nodes[1]
    assert conv.spec.args["filters"] == 16  # through two blocks
    assert (conv.where.key, conv.where.line) == ("model.layers[1]", 17)
    assert conv.where.label == "Conv1D of block outer → inner, defined at line 14"
    assert conv.locate("filters").line == 17  # `width: 16` on the use
    assert (conv.locate("kernel_size").line, conv.locate("kernel_size").key) == (
        14,
        "model.blocks.inner.layers[0].kernel_size",
    )


def test_graph_nodes_take_the_node_above_unless_inputs_names_others(tiny_csv, write_config):
    config = model_config(
        tiny_csv,
        graph=[
            {"name": "a", "type": "Dense", "units": 4},
            {"name": "b", "type": "Dense", "units": 4},
            {"name": "sum", "type": "Add", "inputs": ["a", "b"]},
            {"type": "Concatenate", "inputs": ["sum", "input"]},
            "Flatten",
            HEAD,
        ],
    )
    plan = expand_model(load_config(write_config(config)))
    assert plan.is_graph
    assert [node.inputs for node in plan.nodes] == [
        (INPUT,),
        ("a",),
        ("a", "b"),
        ("sum", INPUT),
        ("concatenate_3",),
        ("flatten_4",),
    ]
    assert all("inputs" not in node.spec.args for node in plan.nodes)


def graph_problems(tiny_csv: Any, write_config: Any, graph: list[Any]) -> list[str]:
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(model_config(tiny_csv, graph=graph)))
    return [problem.one_line() for problem in problems_of(caught)]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (
            [{"name": "a", "type": "Dense", "units": 4}, {"type": "Add"}, HEAD],
            "model.graph[1]: Add joins two or more inputs, got 1; list them",
        ),
        (
            [
                {"name": "a", "type": "Dense", "units": 4},
                {"type": "Dense", "units": 4, "inputs": ["a", "input"]},
                HEAD,
            ],
            "model.graph[1].inputs: Dense takes one input, got 2 (a, input); join them first",
        ),
        (
            [
                {"name": "a", "type": "Dense", "units": 4, "inputs": "b"},
                {"name": "b", "type": "Dense", "units": 4, "inputs": "input"},
                HEAD,
            ],
            "model.graph[0].inputs: node 'b' is used before it is defined (line ",
        ),
        (
            [{"name": "a", "type": "Dense", "units": 4}, {"name": "a", "type": "Dense"}, HEAD],
            "model.graph[1].name: two nodes are named 'a'; give each node its own name",
        ),
        (
            [{"type": "Dense", "units": 4, "inputs": "self"}, HEAD],
            "model.graph[0].inputs: no node named 'self'",
        ),
        (
            [{"name": "loop", "type": "Dense", "units": 4, "inputs": "loop"}, HEAD],
            "model.graph[0].inputs: the graph has a cycle: loop → loop;",
        ),
        (
            [{"type": "Dense", "units": 4}, {"name": "dense_0", "type": "Dense"}, HEAD],
            "model.graph[1].name: the name 'dense_0' is also the one cnncli gives another layer",
        ),
        (
            [{"type": "Dense", "units": 2, "repeat": 20_000}, HEAD],
            "model.graph[0].repeat: repeat: 20000 makes 20,000 layers, more than the 10,000",
        ),
        (
            [{"type": "Dense", "units": "$units"}, HEAD],
            "model.graph[0].units: $units is a block parameter, but this layer is not inside",
        ),
    ],
)
def test_graph_mistakes_are_named_at_their_line_with_the_fix(
    tiny_csv, write_config, graph, expected
):
    (line,) = graph_problems(tiny_csv, write_config, graph)
    assert expected in line
    assert ".yaml:" in line.split(": model.")[0]  # file:line:col before the key


def test_inputs_in_a_stack_or_inside_a_block_are_refused(tiny_csv, write_config):
    block = {"layers": [{"type": "Dense", "units": 4, "inputs": "input"}]}
    config = model_config(
        tiny_csv,
        blocks={"b": block},
        layers=[{"type": "Dense", "units": 4, "inputs": "input"}, {"block": "b"}, HEAD],
    )
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    lines = [problem.one_line() for problem in problems_of(caught)]
    assert any("model.layers[0].inputs: inputs is for model.graph" in line for line in lines)
    assert any("model.blocks.b.layers[0].inputs: a layer inside a block" in line for line in lines)


def test_an_unknown_block_gets_a_did_you_mean(tiny_csv, write_config):
    config = model_config(
        tiny_csv, blocks={"conv_bn": CONV_BN}, layers=[{"block": "conv_nb"}, HEAD]
    )
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.message == "no block named 'conv_nb' (blocks: conv_bn)"
    assert problem.hint == "did you mean 'conv_bn'?"


def test_layers_and_graph_together_or_neither_are_refused(tiny_csv, write_config):
    for model in ({"layers": [HEAD], "graph": [HEAD]}, {"input_shape": [3]}):
        with pytest.raises(CnnCliError, match="either model.layers .* or model.graph"):
            load_config(write_config(base_config(tiny_csv, model=model)))


def test_a_stack_keeps_its_fingerprint_and_a_graph_round_trips(tiny_csv, write_config):
    stack = load_config(write_config(base_config(tiny_csv)))
    assert set(stack.to_yaml_dict()["model"]) == {"input_shape", "layers"}
    graph = load_config(
        write_config(
            model_config(
                tiny_csv,
                blocks={"conv_bn": CONV_BN},
                graph=[
                    {"name": "c", "block": "conv_bn", "filters": 4, "kernel_size": 2},
                    {"type": "Add", "inputs": ["c", "c"]},
                    "Flatten",
                    HEAD,
                ],
            )
        )
    )
    saved = graph.to_yaml_dict()
    assert saved["model"]["graph"][0] == {
        "block": "conv_bn",
        "name": "c",
        "filters": 4,
        "kernel_size": 2,
    }
    again = config_from_dict(saved, tiny_csv.parent)
    assert again.fingerprint() == graph.fingerprint()

    def layers(config: Any) -> list[tuple[str, Any, tuple[str, ...]]]:
        return [(node.name, node.spec, node.inputs) for node in expand_model(config).nodes]

    assert layers(again) == layers(graph)
