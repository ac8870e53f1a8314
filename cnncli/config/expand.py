"""Blocks, ``repeat`` and graph nodes expanded into one list of layers, before checks and build.

``expand_model`` is the one place that reads ``model.layers``, ``model.graph`` and
``model.blocks``: it fills each block use's ``$param`` values, repeats what ``repeat: N`` asks
for, names every layer, and gives each its inputs. Every check and the builder work on the
``Node`` list it returns, and each node keeps the location of its use (its ``where``) and
resolves an argument to the line that wrote it: the use's parameter, or the block definition's
line. The graph's own rules (unknown, unused or later nodes, cycles, merges with one input) are
checked here too, without Keras.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cnncli.config.source import key_to_path
from cnncli.errors import CnnCliError, ConfigErrors, Location, did_you_mean, short_repr

if TYPE_CHECKING:
    from cnncli.config.models import BlockUse, Config, LayerSpec

#: The name a graph node uses for the model's input (the data's rows, shaped by input_shape).
INPUT = "input"
#: Layers that join several inputs into one.
MERGE_LAYERS = frozenset(
    {"Add", "Concatenate", "Multiply", "Average", "Subtract", "Maximum", "Minimum", "Dot"}
)
#: Layers a config may expand to: ``repeat`` inside ``repeat`` multiplies, and a billion layers
#: would exhaust memory long before Keras said anything.
MAX_LAYERS = 10_000
#: Keys of a layer entry that are cnncli's, not the Keras layer's.
_RESERVED = ("repeat", "inputs")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Node:
    """One Keras layer of the expanded model.

    Attributes:
        name: the Keras layer's name, unique in the model.
        spec: the layer's type and arguments, block parameters filled.
        inputs: the names of the nodes (or ``INPUT``) it takes.
        where: the entry that made it (the block use, for a layer inside a block).
        argument_at: where an argument's value was written (the use's parameter, or the
            block definition's line), for problems that name one argument.
    """

    name: str
    spec: LayerSpec
    inputs: tuple[str, ...]
    where: Location
    argument_at: Callable[[str], Location] | None = field(default=None, compare=False)

    def locate(self, argument: str) -> Location:
        """Where this layer's ``argument`` was written (or the entry, where it was left out)."""
        return self.argument_at(argument) if self.argument_at else self.where.child(argument)


@dataclass(frozen=True)
class ModelPlan:
    """The expanded model: its nodes in order, and whether it is a graph (functional)."""

    nodes: tuple[Node, ...]
    is_graph: bool

    @property
    def last(self) -> Node:
        return self.nodes[-1]


def expand_model(config: Config) -> ModelPlan:
    """Expand ``model.layers`` or ``model.graph`` into layers, blocks and repeats filled in.

    Raises:
        ConfigErrors: every problem of blocks, repeats and graph edges, each at its line.
    """
    expander = _Expander(config)
    plan = expander.run()
    if expander.problems:
        raise ConfigErrors(expander.problems)
    return plan


def plan_or_none(config: Config) -> ModelPlan | None:
    """The plan, or None where ``expand_model`` reports problems (checks that need it skip)."""
    try:
        return expand_model(config)
    except ConfigErrors:
        return None


@dataclass
class _Use:
    """A block use being expanded: the top-level entry's key and the params' source keys."""

    top_key: str
    values: dict[str, Any]
    value_keys: dict[str, str]
    chain: tuple[str, ...]


class _Expander:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.model = config.model
        self.problems: list[CnnCliError] = []

    def problem(self, message: str, key: str, hint: str, *, on_key: bool = False) -> None:
        path = key_to_path(key) or ()
        where = self.config.source.locate(path, on_key=on_key)
        found = CnnCliError(message, where=where, hint=hint)
        if all(found.one_line() != known.one_line() for known in self.problems):  # once per use
            self.problems.append(found)

    # -- one entry → its layers ---------------------------------------------------------------

    def entry_layers(
        self, entry: LayerSpec | BlockUse, key: str, use: _Use | None
    ) -> list[tuple[LayerSpec, Location, Callable[[str], Location]]]:
        """The layers one entry stands for, repeats included, each with its location."""
        from cnncli.config.models import BlockUse

        repeat = entry.repeat if isinstance(entry, BlockUse) else entry.args.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            self.problem(
                f"repeat must be a whole number of at least 1, got {short_repr(repeat)}",
                f"{key}.repeat",
                "use repeat: 1 or more, or remove this entry",
            )
            return []
        if isinstance(entry, BlockUse):
            once = self.block_layers(entry, key, use)
        else:
            once = [self.plain_layer(entry, key, use)]
        if len(once) * repeat > MAX_LAYERS:
            self.problem(
                f"repeat: {repeat} makes {len(once) * repeat:,} layers,"
                f" more than the {MAX_LAYERS:,} a model may have",
                f"{key}.repeat",
                "use a smaller repeat",
            )
            return []
        return once * repeat

    def plain_layer(
        self, entry: LayerSpec, key: str, use: _Use | None
    ) -> tuple[LayerSpec, Location, Callable[[str], Location]]:
        args = {name: value for name, value in entry.args.items() if name not in _RESERVED}
        sources = {name: f"{key}.{name}" for name in args}
        if use is not None:
            for name, value in args.items():
                args[name], source = self.fill(value, sources[name], use)
                if source is not None:
                    sources[name] = source
        spec = entry.model_copy(update={"args": args})
        if use is None:
            for name, value in args.items():
                if isinstance(value, str) and _PARAM.fullmatch(value):
                    self.problem(
                        f"{value} is a block parameter, but this layer is not inside a block",
                        f"{key}.{name}",
                        "give the value itself, or define a block under model.blocks",
                    )
            where = self.config.locate(key, label=entry.type)
            return spec, where, lambda name: self.config.locate(f"{key}.{name}", label=entry.type)
        line = self.config.locate(key).line
        label = f"{entry.type} of block {' → '.join(use.chain)}" + (
            f", defined at line {line}" if line is not None else ""
        )
        where = _resolving(self.config.locate(use.top_key, label=label), sources, self.config)
        return spec, where, where.child

    def fill(self, value: Any, key: str, use: _Use) -> tuple[Any, str | None]:
        """``value`` with ``$param`` replaced by the use's value; the key it came from."""
        if isinstance(value, str) and (match := _PARAM.fullmatch(value)):
            name = match.group(1)
            if name in use.values:
                return use.values[name], use.value_keys[name]
            block = use.chain[-1]
            params = list(self.model.blocks[block].params)
            self.problem(
                f"'${name}' is not a parameter of block '{block}'"
                f" (params: {', '.join(params) or 'none'})",
                key,
                did_you_mean(name, params, f"add {name} to model.blocks.{block}.params"),
            )
            return value, None
        if isinstance(value, list):
            return [self.fill(item, key, use)[0] for item in value], None
        if isinstance(value, dict):
            return {name: self.fill(item, key, use)[0] for name, item in value.items()}, None
        return value, None

    def block_layers(
        self, entry: BlockUse, key: str, use: _Use | None
    ) -> list[tuple[LayerSpec, Location, Callable[[str], Location]]]:
        blocks = self.model.blocks
        name = entry.block
        if name not in blocks:
            known = sorted(blocks)
            self.problem(
                f"no block named '{name}'"
                + (f" (blocks: {', '.join(known)})" if known else " (model.blocks defines none)"),
                f"{key}.block",
                did_you_mean(name, known, "define it under model.blocks"),
            )
            return []
        chain = (*use.chain, name) if use else (name,)
        if use is not None and name in use.chain:
            self.problem(
                f"block '{use.chain[-1]}' uses itself ({' → '.join(chain)})",
                f"{key}.block",
                "a block cannot contain itself; use repeat: N on its use instead",
            )
            return []
        block = blocks[name]
        values, value_keys = {}, {}
        for param, value in entry.args.items():
            if param not in block.params:
                self.problem(
                    f"block '{name}' has no parameter '{param}'"
                    f" (params: {', '.join(block.params) or 'none'})",
                    f"{key}.{param}",
                    did_you_mean(param, block.params, f"remove it, or add it to {name}'s params"),
                    on_key=True,
                )
                continue
            values[param], source = (
                self.fill(value, f"{key}.{param}", use) if use else (value, None)
            )
            value_keys[param] = source or f"{key}.{param}"
        missing = [param for param in block.params if param not in entry.args]
        if missing:
            self.problem(
                f"block '{name}' needs {', '.join(missing)} (params: {', '.join(block.params)})",
                key,
                f"add {', '.join(f'{param}: ...' for param in missing)} to this use",
            )
            return []
        inner = _Use(use.top_key if use else key, values, value_keys, chain)
        layers = []
        for index, item in enumerate(block.layers):
            item_key = f"model.blocks.{name}.layers[{index}]"
            for reserved in ("name", "inputs"):
                if reserved in _entry_keys(item):
                    self.problem(
                        f"a layer inside a block cannot have {reserved}: each use would repeat it",
                        f"{item_key}.{reserved}",
                        f"remove {reserved} here; name the block's use in model.graph instead",
                        on_key=True,
                    )
            layers += self.entry_layers(item, item_key, inner)
        return layers

    # -- the model ----------------------------------------------------------------------------

    def run(self) -> ModelPlan:
        from cnncli.config.models import BlockUse

        is_graph = self.model.graph is not None
        part = "graph" if is_graph else "layers"
        entries = self.model.graph if is_graph else self.model.layers
        nodes: list[Node] = []
        names: dict[str, int] = {}  # a node's name → its entry's index
        outputs: list[str] = []  # each entry's output node name
        wanted: list[tuple[int, tuple[str, ...] | None]] = []
        for index, entry in enumerate(entries or ()):
            key = f"model.{part}[{index}]"
            layers = self.entry_layers(entry, key, None)
            if not is_graph and "inputs" in _entry_keys(entry):
                self.problem(
                    "inputs is for model.graph; a stack's layer takes the one above it",
                    f"{key}.inputs",
                    "remove inputs, or write the model as model.graph",
                    on_key=True,
                )
            node_name = entry.name if isinstance(entry, BlockUse) else entry.args.get("name")
            given = self.inputs_of(entry, key) if is_graph else None
            wanted.append((index, given))
            first = len(nodes)
            for spec, where, argument_at in layers:
                auto = f"{snake_name(spec.type)}_{len(nodes)}"
                layer_name = spec.args.get("name") if spec.args.get("name") else auto
                if isinstance(entry, BlockUse) or len(layers) > 1:
                    layer_name = auto
                spec = spec.model_copy(update={"args": {**spec.args, "name": layer_name}})
                previous = (nodes[-1].name,) if nodes else (INPUT,)
                nodes.append(Node(layer_name, spec, previous, where, argument_at))
            if not layers:
                outputs.append("")
                continue
            if isinstance(node_name, str) and node_name:
                last = nodes[-1]  # the entry's name is its output's: the name others use
                spec = last.spec.model_copy(update={"args": {**last.spec.args, "name": node_name}})
                nodes[-1] = replace(last, name=node_name, spec=spec)
                if (node_name == INPUT and is_graph) or node_name in names:
                    self.problem(
                        f"two nodes are named '{node_name}'"
                        if node_name in names
                        else f"'{INPUT}' names the model's input and cannot name a node",
                        f"{key}.name",
                        "give each node its own name",
                    )
                names[node_name] = index
            outputs.append(nodes[-1].name)
            if given is not None:
                nodes[first] = replace(nodes[first], inputs=given)
        counts: dict[str, int] = {}
        for node in nodes:
            counts[node.name] = counts.get(node.name, 0) + 1
        for name, count in counts.items():
            if count > 1 and name in names and not self.problems:  # a given name, an automatic one
                self.problem(
                    f"the name '{name}' is also the one cnncli gives another layer"
                    " (an unnamed layer is named <type>_<position>)",
                    f"model.{part}[{names[name]}].name",
                    "choose another name",
                )
        if len(nodes) > MAX_LAYERS:
            self.problem(
                f"the model expands to {len(nodes):,} layers, more than the {MAX_LAYERS:,} allowed",
                f"model.{part}",
                "use fewer or smaller repeats",
            )
        if is_graph and not self.problems:
            self.check_edges(entries or (), nodes, outputs, names, wanted)
        return ModelPlan(tuple(nodes), is_graph)

    def inputs_of(self, entry: LayerSpec | BlockUse, key: str) -> tuple[str, ...] | None:
        from cnncli.config.models import BlockUse

        given = entry.inputs if isinstance(entry, BlockUse) else entry.args.get("inputs")
        if given is None:
            return None
        listed = [given] if isinstance(given, str) else given
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(n, str) for n in listed)
        ):
            self.problem(
                f"inputs must be a node name or a list of them, got {short_repr(given)}",
                f"{key}.inputs",
                "e.g. inputs: [conv3, input]",
            )
            return None
        return tuple(listed)

    def check_edges(
        self,
        entries: Any,
        nodes: list[Node],
        outputs: list[str],
        names: dict[str, int],
        wanted: list[tuple[int, tuple[str, ...] | None]],
    ) -> None:
        """Unknown and later inputs, cycles, unused nodes, merges with one input."""
        defined = [INPUT, *names]
        edges: dict[int, list[int]] = {}  # entry → entries it takes
        used: set[int] = set()
        later: list[tuple[int, int, str, str]] = []
        for index, given in wanted:
            key = f"model.graph[{index}]"
            entry = entries[index]
            kind = getattr(entry, "type", None)
            if given is None:
                if index:
                    edges[index] = [index - 1]
                    used.add(index - 1)
                given_count = 1
            else:
                given_count = len(given)
                for position, name in enumerate(given):
                    where = f"{key}.inputs" + (f"[{position}]" if _listed(entry) else "")
                    if name == INPUT:
                        continue
                    if name not in names:
                        self.problem(
                            f"no node named '{name}' (nodes: {', '.join(defined)})",
                            where,
                            did_you_mean(name, defined, "name a node above this one, or input"),
                        )
                        continue
                    source = names[name]
                    edges.setdefault(index, []).append(source)
                    used.add(source)
                    if source >= index:
                        later.append((index, source, name, where))
            merge = kind in MERGE_LAYERS
            if merge and given_count < 2:
                self.problem(
                    f"{kind} joins two or more inputs, got {given_count}",
                    key,
                    "list them, e.g. inputs: [conv3, shortcut]",
                )
            if kind is not None and not merge and given_count > 1:
                self.problem(
                    f"{kind} takes one input, got {given_count} ({', '.join(given or ())})",
                    f"{key}.inputs",
                    "join them first with a node of type Add, Concatenate, Multiply or Average",
                )
        for index, source, name, where in later:
            cycle = _cycle(edges, source, index, outputs)
            if cycle:
                self.problem(
                    f"the graph has a cycle: {' → '.join(cycle)}",
                    where,
                    "a node can only take nodes above it; break the loop",
                )
            else:
                line = self.config.locate(f"model.graph[{source}]").line
                self.problem(
                    f"node '{name}' is used before it is defined"
                    + (f" (line {line})" if line else ""),
                    where,
                    f"move '{name}' above this node",
                )
        last = len(outputs) - 1
        for index, name in enumerate(outputs):
            if index != last and index not in used and not self.problems:  # not after a typo
                self.problem(
                    f"node '{name}' is not used: no node takes it and it is not the last",
                    f"model.graph[{index}]",
                    "name it in a later node's inputs, or remove it",
                )


def _cycle(
    edges: dict[int, list[int]], start: int, target: int, outputs: list[str]
) -> list[str] | None:
    """The names along a path of taken inputs from ``start`` back to ``target``, if any."""
    path = [start]
    seen = set()

    def walk(index: int) -> bool:
        if index == target:
            return True
        if index in seen:
            return False
        seen.add(index)
        for source in edges.get(index, ()):
            path.append(source)
            if walk(source):
                return True
            path.pop()
        return False

    if not walk(start):
        return None
    return [outputs[target], *(outputs[i] for i in path)]


def _entry_keys(entry: LayerSpec | BlockUse) -> set[str]:
    from cnncli.config.models import BlockUse

    if isinstance(entry, BlockUse):
        keys = {key for key in ("name", "inputs") if getattr(entry, key) is not None}
        return keys | set(entry.args)
    return set(entry.args)


def _listed(entry: LayerSpec | BlockUse) -> bool:
    given = getattr(entry, "inputs", None) or entry.args.get("inputs")
    return isinstance(given, list)


def _resolving(top: Location, sources: dict[str, str], config: Config) -> Location:
    """``top`` whose ``child(argument)`` finds the line that wrote the argument's value."""
    prefix = f"{top.key}."

    def resolve(key: str) -> Location:
        rest = key[len(prefix) :] if key.startswith(prefix) else key
        head = re.split(r"[.\[]", rest, maxsplit=1)[0]
        target = sources[head] + rest[len(head) :] if head in sources else key
        # an argument that is no key (`$u: 8`) is shown at its layer's line
        path = key_to_path(target) or key_to_path(target.rpartition(".")[0]) or ()
        return config.source.locate(path, on_key=True)

    return Location(
        file=top.file,
        key=top.key,
        line=top.line,
        column=top.column,
        label=top.label,
        resolver=resolve,
    )


def snake_name(name: str) -> str:
    """``Conv1D`` → ``conv1_d``: the stem of a layer's default name."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
