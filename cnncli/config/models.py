"""The frozen pydantic models of a config, and ``load_config``, the only way in.

``load_config`` reads the YAML (``source``), applies ``--set`` (``overrides``), validates into these
models (pass one, worded by ``messages``) and runs the cross-field checks (pass two, ``checks``).
It never imports TensorFlow, pandas or scikit-learn, so schema and YAML mistakes are reported in
well under a second.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from cnncli.config.checks import CROSS_CHECKS
from cnncli.config.messages import WRONG_TYPE, explain_errors
from cnncli.config.overrides import apply_overrides
from cnncli.config.source import SourceMap, decode_config_bytes, key_to_path, parse_yaml
from cnncli.errors import CnnCliError, ConfigErrors, Location

SCHEMA_URL = "https://cnncli.dev/schema/config-v1.json"
#: NumPy's and scikit-learn's seeds are 0..2**32-1; outside that, seeding fails after the data
#: is read.
SEED_MAX = 2**32 - 1
#: Counts TensorFlow holds as int32 (batch size, steps, epochs, shape dimensions).
INT32_MAX = 2**31 - 1


def _usable_path(value: str) -> str:
    if "\0" in value:  # the OS refuses it: open() raised ValueError, reported as a bug
        raise ValueError("a path cannot hold a NUL character (\\0)")
    return value


#: A file or folder name from a config.
PathText = Annotated[str, AfterValidator(_usable_path)]


#: A run's name (and a run folder's, ``<name>-<timestamp>``): no separators, no leading dot.
RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Strict(BaseModel):
    # strict: YAML's `true` and "3" are not the integer 1 and 3 (issue 11); a float field still
    # takes an integer, which loses nothing.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NamedObject(_Strict):
    """A Keras object by name plus keyword arguments: ``adam`` or ``{type: Adam, ...}``."""

    type: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"type": value}
        if isinstance(value, dict) and "args" not in value:
            args = {key: item for key, item in value.items() if key != "type"}
            return {"type": value.get("type"), "args": args} if "type" in value else value
        return value


class LayerSpec(NamedObject):
    """One layer: the Keras class name in ``type``, every other key a keyword argument."""


#: A block use's own keys; every other key of a use fills a parameter.
BLOCK_USE_KEYS = ("block", "repeat", "name", "inputs")


class BlockUse(_Strict):
    """A use of a block in ``model.layers`` or ``model.graph``: ``{block: NAME, repeat: N, ...}``;
    every other key fills one of the block's ``params``."""

    block: str = Field(min_length=1)
    #: How many times the block follows itself; checked (``repeat: 0``) where blocks expand.
    repeat: int = 1
    #: In a graph: the node's name and the names it takes its input from.
    name: str | None = Field(default=None, min_length=1)
    inputs: Any = None  # a name or a list of names, checked where the graph expands
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, dict) and "args" not in value:
            own = BLOCK_USE_KEYS
            args = {key: item for key, item in value.items() if key not in own}
            return {**{key: value[key] for key in own if key in value}, "args": args}
        return value


#: A ``model.layers`` or ``model.graph`` entry: a Keras layer, or a use of a block (``block:``).
LayerEntry = Annotated[
    Annotated[LayerSpec, Tag("entry-layer")] | Annotated[BlockUse, Tag("entry-block")],
    Discriminator(
        lambda value: (
            "entry-block"
            if isinstance(value, BlockUse) or (isinstance(value, dict) and "block" in value)
            else "entry-layer"
        )
    ),
]


class BlockSpec(_Strict):
    """A named sequence of layers defined once under ``model.blocks`` and used many times;
    ``$param`` in an argument's value is filled by each use."""

    params: list[str] = Field(default_factory=list)
    layers: list[LayerEntry] = Field(min_length=1)

    @field_validator("params")
    @classmethod
    def _params_a_use_can_fill(cls, params: list[str]) -> list[str]:
        # a use's block/repeat/name/inputs are its own keys: such a parameter could never be filled
        for param in params:
            if param in BLOCK_USE_KEYS:
                raise ValueError(
                    f"'{param}' cannot be a block parameter: on a use, {param}: is the use's own;"
                    f" rename the parameter (e.g. {param}_value) and write ${param}_value"
                )
        return params


class CallbackSpec(NamedObject):
    """One callback: the Keras class name in ``type``, every other key a keyword argument."""


class DataSpec(_Strict):
    path: PathText
    test_path: PathText | None = None
    features: list[str] | None = Field(default=None, min_length=1)
    label: str | None = None
    missing: Literal["error", "drop", "mean"] = "error"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    #: Train from a chunked reader so memory stays flat; auto: when the file exceeds 256 MB.
    streaming: Literal["auto"] | bool = "auto"
    chunk_rows: int = Field(default=65_536, gt=0, le=INT32_MAX)
    #: A column's type where inference would get it wrong: date expands into year, month, day
    #: of week and day of year; drop leaves a column (an ID, free text) out.
    columns: dict[str, Literal["numeric", "categorical", "date", "drop"]] = Field(
        default_factory=dict
    )


class PreprocessSpec(_Strict):
    features: Literal["standard", "minmax", "none"] = "standard"
    categorical: Literal["onehot"] = "onehot"
    label: Literal["onehot", "sparse", "none", "standard"] | None = None


class SplitSpec(_Strict):
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    random_state: int = Field(default=0, ge=0, le=SEED_MAX)
    stratify: bool = True
    #: shuffle: scikit-learn's train_test_split (the seed's split); hash: each row's number and
    #: random_state decide, so a file read in chunks splits the same way; auto: hash when streaming.
    method: Literal["auto", "shuffle", "hash"] = "auto"


class ModelSpec(_Strict):
    input_shape: list[int] | None = Field(default=None, min_length=1)
    #: A stack (a ``Sequential``), or ``graph``: nodes with names and ``inputs`` (functional).
    layers: list[LayerEntry] | None = Field(default=None, min_length=1)
    graph: list[LayerEntry] | None = Field(default=None, min_length=1)
    blocks: dict[str, BlockSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _layers_or_graph(self) -> ModelSpec:
        if (self.layers is None) == (self.graph is None):
            raise ValueError(
                "give either model.layers (a stack) or model.graph (named nodes), not "
                + ("both" if self.layers is not None else "neither")
            )
        return self

    @field_validator("input_shape")
    @classmethod
    def _positive_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 0 < dim <= INT32_MAX for dim in value):
            raise ValueError(
                f"every dimension must be a positive integer up to {INT32_MAX}, got {value}"
            )
        return value


class CompileSpec(_Strict):
    optimizer: NamedObject = NamedObject(type="adam")
    loss: NamedObject | None = None
    metrics: list[NamedObject] | None = None


#: Past a million, a weighted loss overflows float32 long before it teaches anything.
ClassWeight = Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False)]
#: ``balanced`` or ``{class: weight}``; the discriminator picks one branch, so an error names
#: only what the user meant (the tags are left out of the error's key by config.messages). A
#: value of neither form (a list, another word) names both forms, not only ``balanced``.
ClassWeights = Annotated[
    Annotated[Literal["balanced"], Tag("str")] | Annotated[dict[str, ClassWeight], Tag("dict")],
    Discriminator(
        lambda value: "dict" if isinstance(value, dict) else "str" if value == "balanced" else None,
        custom_error_type=WRONG_TYPE,
        custom_error_message="'balanced' or a mapping {class: weight}",
    ),
]


class FitSpec(_Strict):
    epochs: int = Field(default=50, gt=0, le=INT32_MAX)
    batch_size: int = Field(default=32, gt=0, le=INT32_MAX)
    shuffle: bool = True
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    callbacks: list[CallbackSpec] = Field(default_factory=list)
    steps_per_execution: int | Literal["auto"] = "auto"
    verbose: bool = True
    #: TensorBoard logs (scalars per epoch) in the run's ``tensorboard/`` folder.
    tensorboard: bool = False
    #: Draw the run's plots (learning curves, confusion matrix, ROC, ...) into the run folder.
    plots: bool = True
    #: Loss weight per class: ``balanced`` (n / (classes × count), from the training rows) or
    #: ``{class: weight}`` (unlisted classes weigh 1); checked against the label's classes.
    class_weight: ClassWeights | None = None

    @field_validator("class_weight", mode="before")
    @classmethod
    def _class_names_as_text(cls, value: Any) -> Any:
        # YAML reads `0: 2.0` with an integer key; classes are matched as text (data.cells)
        return {str(key): item for key, item in value.items()} if isinstance(value, dict) else value

    @field_validator("steps_per_execution")
    @classmethod
    def _positive_steps(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 < value <= INT32_MAX:
            raise ValueError(f"must be a positive integer up to {INT32_MAX}, or 'auto'")
        return value


class OutputSpec(_Strict):
    dir: PathText = "runs"


class MlflowSpec(_Strict):
    """Where MLflow logs a run: params, metrics per epoch, test metrics, the run folder."""

    #: A tracking URI; a relative ``sqlite:///`` file resolves against the config's folder.
    uri: str = Field(default="sqlite:///mlruns.db", min_length=1)
    experiment: str = Field(default="cnncli", min_length=1, max_length=500)


class TrackingSpec(_Strict):
    mlflow: MlflowSpec | None = None


class SearchRange(_Strict):
    """A numeric range of a search space: ``{int: [16, 256], log: true}`` or ``{float: [...]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    int_range: list[int] | None = Field(default=None, alias="int", min_length=2, max_length=2)
    float_range: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        default=None, alias="float", min_length=2, max_length=2
    )
    log: bool = False

    @model_validator(mode="after")
    def _one_ordered_range(self) -> SearchRange:
        if (self.int_range is None) == (self.float_range is None):
            raise ValueError("give either int: [low, high] or float: [low, high]")
        low, high = self.bounds
        if low >= high:
            raise ValueError(f"the range [{low}, {high}] is empty or reversed; write [low, high]")
        if self.log and low <= 0:
            raise ValueError(f"log: true needs a range above 0, got [{low}, {high}]")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = self.int_range if self.int_range is not None else self.float_range or (0, 0)
        return low, high


#: A list is a categorical choice between scalars; a mapping is a numeric range.
SearchChoices = Annotated[list[str | int | float | bool | None], Field(min_length=1)]
SearchEntry = Annotated[
    Annotated[SearchChoices, Tag("list")] | Annotated[SearchRange, Tag("dict")],
    Discriminator(
        lambda value: (
            "list"
            if isinstance(value, list)
            else "dict"
            if isinstance(value, (dict, SearchRange))
            else None
        ),
        custom_error_type=WRONG_TYPE,
        custom_error_message="a list of choices or a range {int: [low, high]} / {float: [...]}",
    ),
]


class SearchSpec(_Strict):
    """What ``cnncli tune`` searches; ``train`` trains the base config and ignores it."""

    trials: int = Field(default=20, gt=0, le=100_000)
    #: A metric Keras logs on the validation rows (``val_`` is added when left out).
    metric: str | None = Field(default=None, min_length=1)
    #: Inferred from the metric: loss, error and mae-like names are minimised.
    direction: Literal["minimize", "maximize"] | None = None
    #: Trials are scored on this part of the training rows; the test rows are never seen.
    validation_split: float = Field(default=0.2, gt=0.0, lt=1.0)
    pruner: Literal["median", "hyperband", "none"] = "median"
    #: ``--set``-style paths (``model.layers[0].filters``) to choices or ranges.
    space: dict[str, SearchEntry] = Field(min_length=1)


#: ``host:port`` of the coordinator process (an IPv6 host in brackets: ``[::1]:7777``).
COORDINATOR_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"


class DistributeSpec(_Strict):
    """Training on several devices or processes (``train.distribute``)."""

    #: none; mirrored: every local device, one process; data_parallel: several processes (JAX).
    strategy: Literal["none", "mirrored", "data_parallel"] = "none"
    #: ``host:port`` process 0 listens on; default ``CNNCLI_COORDINATOR``, else 127.0.0.1:7777.
    coordinator: str | None = Field(default=None, pattern=COORDINATOR_PATTERN, max_length=300)
    num_processes: int = Field(default=1, ge=1, le=1024)
    #: Seconds without a sign of life from a worker before the others stop.
    heartbeat_timeout: int = Field(default=100, ge=2, le=86400)

    @field_validator("coordinator")
    @classmethod
    def _port_in_range(cls, value: str | None) -> str | None:
        if value is not None and not 0 < int(value.rsplit(":", 1)[1]) < 65536:
            raise ValueError("the port must be 1..65535")
        return value


class Config(_Strict):
    """A whole validated config. Data paths are absolute once loaded."""

    name: str = Field(default="run", pattern=RUN_NAME_PATTERN, max_length=80)
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    task: Literal["classification", "regression"] | None = None
    #: Keras backend: tensorflow, jax (XLA-compiled steps; faster for small stacks), or torch
    #: (PyTorch, from the ``cnncli[torch]`` extra).
    backend: Literal["tensorflow", "jax", "torch"] = "tensorflow"
    data: DataSpec
    preprocess: PreprocessSpec = PreprocessSpec()
    split: SplitSpec = SplitSpec()
    model: ModelSpec
    compile: CompileSpec = CompileSpec()
    fit: FitSpec = FitSpec()
    output: OutputSpec = OutputSpec()
    tracking: TrackingSpec = TrackingSpec()
    search: SearchSpec | None = None
    distribute: DistributeSpec = DistributeSpec()

    _source: SourceMap = PrivateAttr(default_factory=lambda: SourceMap(file="<config>"))
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> dict[str, Any]:
        """The config as written plus ``--set`` (layers unexpanded): what a search point edits."""
        return copy.deepcopy(self._raw)

    @property
    def source(self) -> SourceMap:
        """Where each value came from, for error messages."""
        return self._source

    def locate(self, key: str, *, label: str | None = None) -> Location:
        """Location of a dotted config key such as ``model.layers[1]``."""
        path = key_to_path(key) or ()
        return self._source.locate(path, label=label)

    def to_yaml_dict(self) -> dict[str, Any]:
        """The config as plain data in the YAML shape users write (layers flattened)."""
        data = self.model_dump(mode="json")

        def flatten(obj: dict[str, Any]) -> dict[str, Any] | str:
            return {"type": obj["type"], **obj["args"]} if obj["args"] else obj["type"]

        def flatten_entry(obj: dict[str, Any]) -> dict[str, Any] | str:
            if "block" not in obj:
                return flatten(obj)
            own = {key: obj[key] for key in ("block", "repeat", "name", "inputs")}
            own = {key: item for key, item in own.items() if item not in (None, 1)}
            return own | obj["args"]

        model = data["model"]
        for part in ("layers", "graph"):
            if model[part] is None:
                del model[part]  # absent, as written: a stack's fingerprint stays what it was
            else:
                model[part] = [flatten_entry(entry) for entry in model[part]]
        if model["blocks"]:
            for block in model["blocks"].values():
                block["layers"] = [flatten_entry(entry) for entry in block["layers"]]
        else:
            del model["blocks"]
        compile_ = data["compile"]
        compile_["optimizer"] = flatten(compile_["optimizer"])
        if compile_["loss"] is not None:
            compile_["loss"] = flatten(compile_["loss"])
        if compile_["metrics"] is not None:
            compile_["metrics"] = [flatten(metric) for metric in compile_["metrics"]]
        data["fit"]["callbacks"] = [flatten(cb) for cb in data["fit"]["callbacks"]]
        if self.search is None:  # a config without one reads back as it always did
            del data["search"]
        else:
            data["search"] = self.search.model_dump(mode="json", by_alias=True, exclude_none=True)
        if self.distribute == DistributeSpec():
            # unset, it is left out: configs, fingerprints and checkpoints from before it match
            del data["distribute"]
        return data

    def fingerprint(self) -> str:
        """SHA-256 of the resolved config, stable across key order."""
        text = json.dumps(self.to_yaml_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: Path | str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config file; report every problem found.

    Args:
        path: the YAML file.
        overrides: ``key=value`` strings from ``--set``, applied in order.

    Returns:
        The validated, frozen config with absolute data paths.

    Raises:
        CnnCliError: a single problem (file unreadable, YAML syntax).
        ConfigErrors: one or more schema or consistency problems, each with its location.
    """
    path = Path(path)
    file = str(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise CnnCliError(
            f"cannot read config: {exc.strerror or exc}",
            where=Location(file=file),
            hint="check the path",
        ) from exc
    raw, source = parse_yaml(decode_config_bytes(raw_bytes, file), file)
    if not isinstance(raw, dict):
        raise CnnCliError(
            "a config must be a mapping of sections (name, data, model, ...)",
            where=Location(file=file, line=1, column=1),
            hint="start from configs/seed.yaml",
        )
    if "name" not in raw:
        raw["name"] = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).lstrip("-_.") or "run"
    raw = apply_overrides(raw, overrides, source)
    return config_from_raw(raw, source, path.parent)


def config_from_raw(raw: dict[str, Any], source: SourceMap, base_dir: Path) -> Config:
    """Validate a config's plain data (paths resolved, cross-checks run; ``config.expand``
    checks blocks, ``repeat`` and graph edges among the cross-checks).

    Args:
        raw: the config as written, after ``--set``; kept as ``Config.raw``.
        source: where each value came from.
        base_dir: the folder relative data paths start from.

    Raises:
        ConfigErrors: one or more schema or consistency problems, each with its location.
    """
    config = _validate(raw, source)
    config = _resolve_paths(config, base_dir)
    config._raw = copy.deepcopy(raw)
    problems = [problem for check in CROSS_CHECKS if (problem := check(config)) is not None]
    problems = [  # a check that finds several problems reports each on its own line
        single
        for problem in problems
        for single in (problem.problems if isinstance(problem, ConfigErrors) else [problem])
    ]
    if problems:
        raise ConfigErrors(problems)
    return config


def config_from_dict(raw: dict[str, Any], base_dir: Path, file: str = "<config>") -> Config:
    """Validate an in-memory config, such as the resolved one a saved run holds."""
    source = SourceMap(file=file)
    config = _validate(copy.deepcopy(raw), source)
    return _resolve_paths(config, base_dir)


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    def absolute(value: str | None) -> str | None:
        if value is None:
            return None
        if Path(value).is_absolute():
            return value
        try:
            return str((base_dir / value).resolve())
        except (OSError, RuntimeError):  # a link loop, a name too long: require_data_files says
            return os.path.abspath(base_dir / value)

    data = config.data.model_copy(
        update={"path": absolute(config.data.path), "test_path": absolute(config.data.test_path)}
    )
    update: dict[str, Any] = {"data": data}
    mlflow = config.tracking.mlflow
    if mlflow is not None and mlflow.uri.startswith("sqlite:///"):
        # a relative SQLite file sits beside the config, as a relative data.path does
        database = absolute(mlflow.uri.removeprefix("sqlite:///"))
        tracked = mlflow.model_copy(update={"uri": f"sqlite:///{database}"})
        update["tracking"] = config.tracking.model_copy(update={"mlflow": tracked})
    resolved = config.model_copy(update=update)
    resolved._source = config._source
    resolved._raw = config._raw
    return resolved


def _validate(raw: dict[str, Any], source: SourceMap) -> Config:
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigErrors(explain_errors(exc, source, Config)) from None
    config._source = source
    return config
