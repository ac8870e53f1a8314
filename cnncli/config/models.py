"""Read a config with positions and validate it into frozen pydantic models.

``load_config`` is the only way in. It never imports TensorFlow, pandas or scikit-learn, so
schema and YAML mistakes are reported in well under a second.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from cnncli.config.source import (
    SourceMap,
    decode_config_bytes,
    key_to_path,
    parse_override_value,
    parse_yaml,
    path_to_key,
)
from cnncli.errors import CnnCliError, ConfigErrors, Location

SCHEMA_URL = "https://cnncli.dev/schema/config-v1.json"

#: Layer types a config may never name: they wrap arbitrary Python callables or foreign code.
FORBIDDEN_LAYERS = frozenset(
    {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "InputLayer", "Input"}
)
FORBIDDEN_CALLBACKS = frozenset({"LambdaCallback", "RemoteMonitor"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    @field_validator("type")
    @classmethod
    def _not_forbidden(cls, value: str) -> str:
        if value in FORBIDDEN_LAYERS:
            hint = (
                "set model.input_shape instead"
                if value in ("Input", "InputLayer")
                else "configs cannot run code; build the computation from ordinary layers"
            )
            raise ValueError(f"layer type '{value}' is not allowed; {hint}")
        return value


class CallbackSpec(NamedObject):
    @field_validator("type")
    @classmethod
    def _not_forbidden(cls, value: str) -> str:
        if value in FORBIDDEN_CALLBACKS:
            raise ValueError(
                f"callback '{value}' is not allowed: it runs code or talks to a server"
            )
        return value


class DataSpec(_Strict):
    path: str
    test_path: str | None = None
    features: list[str] | None = Field(default=None, min_length=1)
    label: str | None = None
    missing: Literal["error", "drop", "mean"] = "error"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    #: Train from a chunked reader so memory stays flat; auto: when the file exceeds 256 MB.
    streaming: Literal["auto", True, False] = "auto"
    chunk_rows: int = Field(default=65_536, gt=0)


class PreprocessSpec(_Strict):
    features: Literal["standard", "minmax", "none"] = "standard"
    categorical: Literal["onehot"] = "onehot"
    label: Literal["onehot", "sparse", "none", "standard"] | None = None


class SplitSpec(_Strict):
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    random_state: int = 0
    stratify: bool = True
    #: shuffle: scikit-learn's train_test_split (the seed's split); hash: each row's number and
    #: random_state decide, so a file read in chunks splits the same way; auto: hash when streaming.
    method: Literal["auto", "shuffle", "hash"] = "auto"


class ModelSpec(_Strict):
    input_shape: list[int] | None = Field(default=None, min_length=1)
    layers: list[LayerSpec] = Field(min_length=1)

    @field_validator("input_shape")
    @classmethod
    def _positive_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(dim <= 0 for dim in value):
            raise ValueError(f"every dimension must be a positive integer, got {value}")
        return value


class CompileSpec(_Strict):
    optimizer: NamedObject = NamedObject(type="adam")
    loss: NamedObject | None = None
    metrics: list[NamedObject] | None = None


class FitSpec(_Strict):
    epochs: int = Field(default=10, gt=0)
    batch_size: int = Field(default=32, gt=0)
    shuffle: bool = True
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    callbacks: list[CallbackSpec] = Field(default_factory=list)
    steps_per_execution: int | Literal["auto"] = "auto"
    verbose: bool = True

    @field_validator("steps_per_execution")
    @classmethod
    def _positive_steps(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError("must be a positive integer or 'auto'")
        return value


class OutputSpec(_Strict):
    dir: str = "runs"


class Config(_Strict):
    """A whole validated config. Data paths are absolute once loaded."""

    name: str = Field(default="run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    seed: int | None = None
    task: Literal["classification", "regression"] | None = None
    #: Keras backend: tensorflow, or jax (XLA-compiled steps; faster for small stacks).
    backend: Literal["tensorflow", "jax"] = "tensorflow"
    data: DataSpec
    preprocess: PreprocessSpec = PreprocessSpec()
    split: SplitSpec = SplitSpec()
    model: ModelSpec
    compile: CompileSpec = CompileSpec()
    fit: FitSpec = FitSpec()
    output: OutputSpec = OutputSpec()

    _source: SourceMap = PrivateAttr(default_factory=lambda: SourceMap(file="<config>"))

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

        data["model"]["layers"] = [flatten(layer) for layer in data["model"]["layers"]]
        compile_ = data["compile"]
        compile_["optimizer"] = flatten(compile_["optimizer"])
        if compile_["loss"] is not None:
            compile_["loss"] = flatten(compile_["loss"])
        if compile_["metrics"] is not None:
            compile_["metrics"] = [flatten(metric) for metric in compile_["metrics"]]
        data["fit"]["callbacks"] = [flatten(cb) for cb in data["fit"]["callbacks"]]
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
    config = _validate(raw, source)
    config = _resolve_paths(config, path.parent)
    problems = [problem for check in CROSS_CHECKS if (problem := check(config)) is not None]
    if problems:
        raise ConfigErrors(problems)
    return config


def config_from_dict(raw: dict[str, Any], base_dir: Path, file: str = "<config>") -> Config:
    """Validate an in-memory config (used for saved runs)."""
    config = _validate(copy.deepcopy(raw), SourceMap(file=file))
    return _resolve_paths(config, base_dir)


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    def absolute(value: str | None) -> str | None:
        if value is None:
            return None
        return str((base_dir / value).resolve()) if not Path(value).is_absolute() else value

    data = config.data.model_copy(
        update={"path": absolute(config.data.path), "test_path": absolute(config.data.test_path)}
    )
    resolved = config.model_copy(update={"data": data})
    resolved._source = config._source
    return resolved


def apply_overrides(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...], source: SourceMap
) -> dict[str, Any]:
    """Apply ``--set key=value`` overrides; values are parsed as YAML."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        where = Location(file=f"--set {text}")
        key, sep, value_text = text.partition("=")
        path = key_to_path(key.strip())
        if not sep or path is None:
            raise CnnCliError(
                "expected key=value with a dotted key",
                where=where,
                hint="for example --set fit.epochs=5 or --set model.layers[0].filters=128",
            )
        value = parse_override_value(value_text, f"--set {text}")
        container: Any = raw
        for depth, part in enumerate(path[:-1]):
            nxt = path[depth + 1]
            container = _step_into(container, part, nxt, text, path[: depth + 1])
        _assign(container, path[-1], value, text, path)
        source.overrides[path] = text
    return raw


def _step_into(container: Any, part: str | int, nxt: str | int, text: str, path: tuple) -> Any:
    if isinstance(part, int):
        _check_index(container, part, text, path)
        item = container[part]
        if isinstance(item, str) and isinstance(nxt, str):  # bare layer name → mapping
            item = container[part] = {"type": item}
        return item
    if not isinstance(container, dict):
        raise CnnCliError(
            f"{path_to_key(path[:-1])} is not a mapping", where=Location(file=f"--set {text}")
        )
    if part not in container or container[part] is None:
        container[part] = [] if isinstance(nxt, int) else {}
    return container[part]


def _assign(container: Any, part: str | int, value: Any, text: str, path: tuple) -> None:
    if isinstance(part, int):
        _check_index(container, part, text, path)
        container[part] = value
    elif isinstance(container, dict):
        container[part] = value
    else:
        raise CnnCliError(
            f"{path_to_key(path[:-1])} is not a mapping", where=Location(file=f"--set {text}")
        )


def _check_index(container: Any, index: int, text: str, path: tuple) -> None:
    if not isinstance(container, list):
        raise CnnCliError(
            f"{path_to_key(path[:-1])} is not a list", where=Location(file=f"--set {text}")
        )
    if not -len(container) <= index < len(container):
        what = "stack" if path[:2] == ("model", "layers") else "list"
        unit = "layers" if what == "stack" else "items"
        raise CnnCliError(
            f"the {what} has {len(container)} {unit}",
            where=Location(file=f"--set {text}"),
            hint=f"use an index from 0 to {len(container) - 1}",
        )


def _validate(raw: dict[str, Any], source: SourceMap) -> Config:
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigErrors([_explain(error, source) for error in exc.errors()]) from None
    config._source = source
    return config


# ---------------------------------------------------------------------------------------------
# Turning pydantic's errors into messages that say where and what to do

_MODELS_BY_PATH: dict[tuple[str, ...], type[BaseModel]] = {
    (): Config,
    ("data",): DataSpec,
    ("preprocess",): PreprocessSpec,
    ("split",): SplitSpec,
    ("model",): ModelSpec,
    ("compile",): CompileSpec,
    ("fit",): FitSpec,
    ("output",): OutputSpec,
}

_EXAMPLES = {
    "data.path": "path: data/train.csv",
    "model.layers": "layers: [{type: Dense, units: 16}, {type: Dense, units: auto}]",
    "model": "model: {layers: [{type: Dense, units: auto}]}",
    "data": "data: {path: data/train.csv}",
}


def _yaml_path(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Map pydantic's error location back onto the path a user wrote in YAML."""
    path: list[str | int] = []
    for part in loc:
        if part == "args" and path and isinstance(path[-1], int):
            continue  # NamedObject keeps extra keys under "args"; users write them inline
        if isinstance(part, str) and (
            part.startswith("function-") or part in ("str", "int", "literal['auto']")
        ):
            continue  # union branch labels
        path.append(part)
    return tuple(path)


def _explain(error: dict[str, Any], source: SourceMap) -> CnnCliError:
    path = _yaml_path(error["loc"])
    kind = error["type"]
    received = error.get("input")
    key = path_to_key(path)
    if kind == "extra_forbidden":
        name = str(path[-1])
        model = _MODELS_BY_PATH.get(tuple(p for p in path[:-1] if isinstance(p, str)))
        allowed = sorted(model.model_fields) if model else []
        match = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean '{match[0]}'?" if match else f"allowed keys: {', '.join(allowed)}"
        return CnnCliError(
            f"unknown key '{name}'", where=source.locate(path, on_key=True), hint=hint
        )
    if kind == "missing":
        example = _EXAMPLES.get(key)
        return CnnCliError(
            "missing required value",
            where=source.locate(path),
            hint=f"add it, for example `{example}`" if example else f"add `{path[-1]}:`",
        )
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        options = [option.strip(" '") for option in expected.replace(" or ", ",").split(",")]
        match = difflib.get_close_matches(str(received), options, n=1)
        hint = f"did you mean '{match[0]}'?" if match else f"use one of: {', '.join(options)}"
        return CnnCliError(
            f"got {received!r}, expected one of {', '.join(options)}",
            where=source.locate(path),
            hint=hint,
        )
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = error.get("ctx", {})
        if "gt" in ctx and ctx["gt"] == 0 and isinstance(received, int):
            return CnnCliError(
                f"expected a positive integer, got {received}",
                where=source.locate(path),
                hint=f"set {path[-1]} to 1 or more",
            )
        bound = {
            "greater_than": ">",
            "greater_than_equal": ">=",
            "less_than": "<",
            "less_than_equal": "<=",
        }
        return CnnCliError(
            f"expected a value {bound[kind]} {next(iter(ctx.values()))}, got {received}",
            where=source.locate(path),
        )
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return CnnCliError(f"expected an integer, got {received!r}", where=source.locate(path))
    if kind in ("float_parsing", "float_type"):
        return CnnCliError(f"expected a number, got {received!r}", where=source.locate(path))
    if kind in ("bool_parsing", "bool_type"):
        return CnnCliError(f"expected true or false, got {received!r}", where=source.locate(path))
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type", "string_type"):
        wanted = {
            "list_type": "a list",
            "dict_type": "a mapping",
            "model_type": "a mapping",
            "model_attributes_type": "a mapping",
            "string_type": "a string",
        }[kind]
        return CnnCliError(f"expected {wanted}, got {received!r}", where=source.locate(path))
    if kind == "too_short":
        return CnnCliError("must not be empty", where=source.locate(path), hint=_hint_for(key))
    if kind == "string_pattern_mismatch":
        return CnnCliError(
            f"{received!r} is not a usable name",
            where=source.locate(path),
            hint="use letters, digits, '-', '_' and '.', starting with a letter or digit",
        )
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return CnnCliError(message, where=source.locate(path))


def _hint_for(key: str) -> str | None:
    example = _EXAMPLES.get(key)
    return f"for example `{example}`" if example else None


# ---------------------------------------------------------------------------------------------
# Pass two: small cross-field checks, each returning a problem or None


def check_label_not_feature(config: Config) -> CnnCliError | None:
    """The label column is not also a feature."""
    features, label = config.data.features, config.data.label
    if features and label and label in features:
        index = features.index(label)
        return CnnCliError(
            f"the label '{label}' is also listed as a feature",
            where=config.locate(f"data.features[{index}]"),
            hint="remove it from data.features",
        )
    return None


def check_label_preprocessing_fits_task(config: Config) -> CnnCliError | None:
    """Label preprocessing matches the task (onehot/sparse classify, none/standard regress)."""
    label, task = config.preprocess.label, config.task
    if label is None or task is None:
        return None
    fits = (
        label in ("onehot", "sparse") if task == "classification" else label in ("none", "standard")
    )
    if fits:
        return None
    options = "onehot or sparse" if task == "classification" else "none or standard"
    return CnnCliError(
        f"preprocess.label '{label}' does not fit task {task}",
        where=config.locate("preprocess.label"),
        hint=f"use {options}",
    )


def check_duplicate_features(config: Config) -> CnnCliError | None:
    """No feature column is listed twice."""
    features = config.data.features or []
    seen: set[str] = set()
    for index, name in enumerate(features):
        if name in seen:
            return CnnCliError(
                f"feature '{name}' is listed twice",
                where=config.locate(f"data.features[{index}]"),
                hint="list each column once",
            )
        seen.add(name)
    return None


def check_conv_strides_with_dilation(config: Config) -> CnnCliError | None:
    """Conv1D strides and dilation are not both set (Keras refuses the pair)."""
    for index, layer in enumerate(config.model.layers):
        strides, dilation = layer.args.get("strides", 1), layer.args.get("dilation_rate", 1)
        if layer.type in ("Conv1D", "SeparableConv1D") and _not_one(strides) and _not_one(dilation):
            return CnnCliError(
                f"strides={strides} together with dilation_rate={dilation}",
                where=config.locate(f"model.layers[{index}]", label=layer.type),
                hint="Keras allows strides or dilation_rate other than 1, not both; set one to 1",
            )
    return None


def check_causal_padding(config: Config) -> CnnCliError | None:
    """``padding: causal`` exists only for 1-D convolutions."""
    for index, layer in enumerate(config.model.layers):
        if layer.args.get("padding") == "causal" and not layer.type.endswith("1D"):
            return CnnCliError(
                f"padding 'causal' is only defined for 1-D convolutions, not {layer.type}",
                where=config.locate(f"model.layers[{index}].padding", label=layer.type),
                hint="use padding: same or valid",
            )
    return None


def _not_one(value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(item != 1 for item in values)


CROSS_CHECKS = (
    check_label_not_feature,
    check_duplicate_features,
    check_label_preprocessing_fits_task,
    check_conv_strides_with_dilation,
    check_causal_padding,
)
