"""The allow-list of every Keras name a config can hold, and the one way to look a name up.

Each name Keras exports in a namespace a config reaches (layers, callbacks, optimizers, losses,
metrics, activations, initializers, regularizers, constraints, learning-rate schedules) is
classified here as data: allowed, refused with a reason, or (for callbacks that write files)
confined to the run folder. A name Keras exports that is not classified is refused until someone
reviews it, so a code-running class that a future Keras adds never slips through. The tables name
classes as strings; Keras itself is imported only by the caller and passed in.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cnncli.data.csvfile import NAME_MAX
from cnncli.errors import CnnCliError, Location, did_you_mean, short_repr


@dataclass(frozen=True)
class Refusal:
    """Why a name is refused (follows "is not allowed: ") and what to do instead."""

    reason: str
    hint: str


@dataclass(frozen=True)
class Namespace:
    """One Keras namespace: its module path, what users call its members, and the tables."""

    module: str  # attribute path under ``keras``: "layers", "optimizers.schedules"
    noun: str  # "layer type", "optimizer": the word in messages
    allowed: frozenset[str]
    refused: dict[str, Refusal] = field(default_factory=dict)
    #: Callbacks that write files: the arguments holding a path that must stay inside the run.
    confined: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Names Keras resolves itself (``compile(metrics=["acc"])``, ``losses.get("mse")``) but
    #: does not export as attributes; passed to Keras as the string.
    aliases: frozenset[str] = frozenset()
    #: Optimizers deserialize case-insensitively in Keras (``ADAM`` is Adam); the rest are exact.
    any_case: bool = False
    unknown: str = "unknown {noun} '{name}'"
    fallback: str = ""  # the hint when nothing is close
    #: Members that need a package cnncli does not install: name → (module, pip name).
    needs: dict[str, tuple[str, str]] = field(default_factory=dict)

    def usable(self) -> list[str]:
        """Every name a config may write, sorted."""
        return sorted(self.allowed | set(self.confined) | self.aliases)

    def classified(self) -> frozenset[str]:
        return self.allowed | set(self.refused) | set(self.confined) | self.aliases


_BASE = Refusal("it is an abstract base class", "name one of its concrete subclasses")
_CODE = "configs cannot run code; build the computation from ordinary layers"
_RNN = "use LSTM, GRU or SimpleRNN, which build their own cell"
_VOCABULARY = Refusal(
    "it can read a vocabulary file named in the config",
    "list the column in data.features: cnncli one-hot encodes categorical columns itself",
)
_WRAPS_OPTIMIZERS = Refusal(
    "it wraps other optimizer objects, which a config cannot hold", "name one optimizer"
)

LAYERS = Namespace(
    module="layers",
    noun="layer type",
    unknown="'{name}' is not a Keras layer",
    fallback="see keras.io/api/layers for the names",
    refused={
        "Lambda": Refusal("it runs Python code", _CODE),
        "TFSMLayer": Refusal("it loads a saved model from outside the config", _CODE),
        "TorchModuleWrapper": Refusal("it wraps foreign Python code", _CODE),
        "JaxLayer": Refusal("it wraps foreign Python code", _CODE),
        "FlaxLayer": Refusal("it wraps foreign Python code", _CODE),
        "InputLayer": Refusal("the input comes from the data", "set model.input_shape instead"),
        "Input": Refusal("the input comes from the data", "set model.input_shape instead"),
        "TextVectorization": Refusal(
            "it can read a vocabulary file and takes Python callables", _VOCABULARY.hint
        ),
        "StringLookup": _VOCABULARY,
        "IntegerLookup": _VOCABULARY,
        "Pipeline": Refusal("it holds layer objects", "list the layers in model.layers instead"),
        "RNN": Refusal("it needs a cell object, which a config cannot hold", _RNN),
        "GRUCell": Refusal("it is a cell for an RNN layer, not a layer", _RNN),
        "LSTMCell": Refusal("it is a cell for an RNN layer, not a layer", _RNN),
        "SimpleRNNCell": Refusal("it is a cell for an RNN layer, not a layer", _RNN),
        "StackedRNNCells": Refusal("it holds cell objects, which a config cannot hold", _RNN),
        "Layer": _BASE,
        "Wrapper": _BASE,
        "InputSpec": Refusal("it describes an input, it is not a layer", "remove it"),
        **{
            function: Refusal(
                "it is a function for functional models, not a layer class",
                f"use the layer class {layer}",
            )
            for function, layer in (
                ("add", "Add"),
                ("average", "Average"),
                ("concatenate", "Concatenate"),
                ("dot", "Dot"),
                ("maximum", "Maximum"),
                ("minimum", "Minimum"),
                ("multiply", "Multiply"),
                ("subtract", "Subtract"),
            )
        },
    },
    allowed=frozenset(
        """
        Activation ActivityRegularization AdaptiveAveragePooling1D AdaptiveAveragePooling2D
        AdaptiveAveragePooling3D AdaptiveMaxPooling1D AdaptiveMaxPooling2D AdaptiveMaxPooling3D
        Add AdditiveAttention AlphaDropout Attention AugMix AutoContrast Average
        AveragePooling1D AveragePooling2D AveragePooling3D AvgPool1D AvgPool2D AvgPool3D
        BatchNormalization Bidirectional CategoryEncoding CenterCrop Concatenate
        ContrastLimitedAdaptiveHistogramEqualization Conv1D Conv1DTranspose Conv2D
        Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM1D ConvLSTM2D ConvLSTM3D Convolution1D
        Convolution1DTranspose Convolution2D Convolution2DTranspose Convolution3D
        Convolution3DTranspose Cropping1D Cropping2D Cropping3D CutMix Dense DepthwiseConv1D
        DepthwiseConv2D Discretization Dot Dropout ELU EinsumDense Embedding Equalization Flatten
        GRU GaussianDropout GaussianNoise GlobalAveragePooling1D GlobalAveragePooling2D
        GlobalAveragePooling3D GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D GlobalMaxPool1D
        GlobalMaxPool2D GlobalMaxPool3D GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D
        GroupNormalization GroupQueryAttention HashedCrossing Hashing Identity LSTM
        LayerNormalization LeakyReLU Masking MaxNumBoundingBoxes MaxPool1D MaxPool2D MaxPool3D
        MaxPooling1D MaxPooling2D MaxPooling3D Maximum MelSpectrogram Minimum MixUp
        MultiHeadAttention Multiply Normalization PReLU Permute RMSNormalization RandAugment
        RandomBrightness RandomColorDegeneration RandomColorJitter RandomContrast RandomCrop
        RandomElasticTransform RandomErasing RandomFlip RandomGaussianBlur RandomGrayscale
        RandomHue RandomInvert RandomPerspective RandomPosterization RandomRotation
        RandomSaturation RandomSharpness RandomShear RandomTranslation RandomZoom ReLU
        RepeatVector Rescaling Reshape Resizing ReversibleEmbedding STFTSpectrogram
        SeparableConv1D SeparableConv2D SeparableConvolution1D SeparableConvolution2D SimpleRNN
        Softmax Solarization SpatialDropout1D SpatialDropout2D SpatialDropout3D
        SpectralNormalization Subtract TimeDistributed UnitNormalization UpSampling1D
        UpSampling2D UpSampling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D
        """.split()
    ),
)

_IN_THE_RUN = "give a path relative to the run folder, e.g. logs/history.csv"

CALLBACKS = Namespace(
    module="callbacks",
    noun="callback",
    unknown="unknown callback '{name}'",
    confined={
        "CSVLogger": ("filename",),
        "ModelCheckpoint": ("filepath",),
        "TensorBoard": ("log_dir",),
        "BackupAndRestore": ("backup_dir",),
    },
    # Keras imports it only when training starts, so without this a missing package passed
    # validate and then stopped train with Keras' own exception.
    needs={"TensorBoard": ("tensorboard", "tensorboard")},
    refused={
        "LambdaCallback": Refusal("it runs Python code", "configs cannot run code"),
        "LearningRateScheduler": Refusal(
            "it takes a Python function",
            "use a schedule: compile.optimizer.learning_rate: {type: ExponentialDecay, ...}",
        ),
        "RemoteMonitor": Refusal(
            "it sends training data to a server", "use CSVLogger with a path inside the run"
        ),
        "OrbaxCheckpoint": Refusal(
            "it needs the orbax-checkpoint package, which cnncli does not install",
            "use ModelCheckpoint with a path inside the run",
        ),
        "ProgbarLogger": Refusal(
            "it prints to stdout, which carries cnncli's results",
            "cnncli prints a line per epoch itself",
        ),
        "Callback": _BASE,
        "CallbackList": Refusal("it holds callback objects", "list each callback in fit.callbacks"),
    },
    allowed=frozenset(
        "EarlyStopping History ReduceLROnPlateau SwapEMAWeights TerminateOnNaN".split()
    ),
)

OPTIMIZERS = Namespace(
    module="optimizers",
    noun="optimizer",
    any_case=True,
    refused={
        "Optimizer": _BASE,
        "LossScaleOptimizer": _WRAPS_OPTIMIZERS,
        "MultiOptimizer": _WRAPS_OPTIMIZERS,
        "OptimizerMap": _WRAPS_OPTIMIZERS,
    },
    allowed=frozenset(
        "Adadelta Adafactor Adagrad Adam AdamW Adamax Ftrl Lamb Lion Muon Nadam RMSprop SGD"
        " ScheduleFreeAdamW".split()
    ),
)

LOSSES = Namespace(
    module="losses",
    noun="loss",
    fallback="see keras.io/api/losses",
    aliases=frozenset("BCE MAE MAPE MSE MSLE KLD bce mae mape mse msle kld".split()),
    refused={"Loss": _BASE},
    allowed=frozenset(
        """
        BinaryCrossentropy BinaryFocalCrossentropy CTC CategoricalCrossentropy
        CategoricalFocalCrossentropy CategoricalGeneralizedCrossEntropy CategoricalHinge Circle
        CosineSimilarity Dice Hinge Huber KLDivergence LogCosh MeanAbsoluteError
        MeanAbsolutePercentageError MeanSquaredError MeanSquaredLogarithmicError Poisson
        SparseCategoricalCrossentropy SquaredHinge Tversky
        binary_crossentropy binary_focal_crossentropy categorical_crossentropy
        categorical_focal_crossentropy categorical_generalized_cross_entropy categorical_hinge
        circle cosine_similarity ctc dice hinge huber kl_divergence log_cosh mean_absolute_error
        mean_absolute_percentage_error mean_squared_error mean_squared_logarithmic_error poisson
        sparse_categorical_crossentropy squared_hinge tversky
        """.split()
    ),
)

METRICS = Namespace(
    module="metrics",
    noun="metric",
    fallback="see keras.io/api/metrics",
    # compile() reads these itself: accuracy and crossentropy matched to the loss
    aliases=frozenset(
        "accuracy acc crossentropy ce BCE MAE MAPE MSE MSLE bce mae mape mse msle".split()
    ),
    refused={
        "Metric": _BASE,
        "MeanMetricWrapper": Refusal("it takes a Python function", "name a metric instead"),
    },
    allowed=frozenset(
        """
        AUC Accuracy BinaryAccuracy BinaryCrossentropy BinaryIoU CategoricalAccuracy
        CategoricalCrossentropy CategoricalHinge ConcordanceCorrelation CosineSimilarity F1Score
        FBetaScore FalseNegatives FalsePositives Hinge IoU KLDivergence LogCoshError Mean
        MeanAbsoluteError MeanAbsolutePercentageError MeanIoU MeanSquaredError
        MeanSquaredLogarithmicError OneHotIoU OneHotMeanIoU PearsonCorrelation Poisson Precision
        PrecisionAtRecall R2Score Recall RecallAtPrecision RootMeanSquaredError
        SensitivityAtSpecificity SparseCategoricalAccuracy SparseCategoricalCrossentropy
        SparseTopKCategoricalAccuracy SpecificityAtSensitivity SquaredHinge Sum
        TopKCategoricalAccuracy TrueNegatives TruePositives
        binary_accuracy binary_crossentropy binary_focal_crossentropy categorical_accuracy
        categorical_crossentropy categorical_focal_crossentropy categorical_hinge
        concordance_correlation hinge huber kl_divergence log_cosh mean_absolute_error
        mean_absolute_percentage_error mean_squared_error mean_squared_logarithmic_error
        pearson_correlation poisson sparse_categorical_accuracy sparse_categorical_crossentropy
        sparse_top_k_categorical_accuracy squared_hinge top_k_categorical_accuracy
        """.split()
    ),
)


def _plain(module: str, noun: str, names: str, base: str | None) -> Namespace:
    """A namespace whose exported names are all allowed but for its abstract base class."""
    refused = {base: _BASE} if base else {}
    return Namespace(module=module, noun=noun, allowed=frozenset(names.split()), refused=refused)


SCHEDULES = _plain(
    "optimizers.schedules",
    "schedule",
    "CosineDecay CosineDecayRestarts ExponentialDecay InverseTimeDecay PiecewiseConstantDecay"
    " PolynomialDecay",
    "LearningRateSchedule",
)
ACTIVATIONS = _plain(
    "activations",
    "activation",
    """
    celu elu exponential gelu glu hard_shrink hard_sigmoid hard_silu hard_swish hard_tanh
    leaky_relu linear log_sigmoid log_softmax mish relu relu6 selu sigmoid silu soft_shrink
    softmax softplus softsign sparse_plus sparse_sigmoid sparsemax squareplus swish tanh
    tanh_shrink threshold
    """,
    None,
)
INITIALIZERS = _plain(
    "initializers",
    "initializer",
    """
    Constant GlorotNormal GlorotUniform HeNormal HeUniform Identity IdentityInitializer
    LecunNormal LecunUniform Ones Orthogonal OrthogonalInitializer RandomNormal RandomUniform
    STFT STFTInitializer TruncatedNormal VarianceScaling Zeros constant glorot_normal
    glorot_uniform he_normal he_uniform identity lecun_normal lecun_uniform ones orthogonal
    random_normal random_uniform stft truncated_normal variance_scaling zeros
    """,
    "Initializer",
)
REGULARIZERS = _plain(
    "regularizers",
    "regularizer",
    "L1 L1L2 L2 OrthogonalRegularizer l1 l1_l2 l2 orthogonal_regularizer",
    "Regularizer",
)
CONSTRAINTS = _plain(
    "constraints",
    "constraint",
    "MaxNorm MinMaxNorm NonNeg UnitNorm max_norm min_max_norm non_neg unit_norm",
    "Constraint",
)

NAMESPACES = {
    ns.module: ns
    for ns in (
        LAYERS,
        CALLBACKS,
        OPTIMIZERS,
        SCHEDULES,
        LOSSES,
        METRICS,
        ACTIVATIONS,
        INITIALIZERS,
        REGULARIZERS,
        CONSTRAINTS,
    )
}

#: Attributes of Keras namespaces that are helpers, not objects a config could name.
NOT_OBJECTS = frozenset({"get", "serialize", "deserialize", "legacy", "schedules"})


def keras_module(keras: Any, namespace: Namespace) -> Any:
    """The Keras module a namespace reads, e.g. ``keras.optimizers.schedules``."""
    module = keras
    for part in namespace.module.split("."):
        module = getattr(module, part)
    return module


def exported_names(keras: Any, namespace: Namespace) -> set[str]:
    """Every public object the installed Keras exports in this namespace."""
    module = keras_module(keras, namespace)
    return {
        name
        for name in dir(module)
        if not name.startswith("_") and name not in NOT_OBJECTS and callable(getattr(module, name))
    }


def _require_package(namespace: Namespace, name: str, where: Location) -> None:
    """A member whose package is missing: one line naming what to install."""
    if name not in namespace.needs:
        return
    import importlib.util

    module, package = namespace.needs[name]
    if importlib.util.find_spec(module) is None:
        raise CnnCliError(
            f"{namespace.noun} '{name}' needs the {package} package, which is not installed",
            where=where.child("type"),
            hint=f"pip install {package}, or remove the {namespace.noun}",
        )


def lookup(namespace: Namespace, name: str, where: Location, keras: Any) -> Any:
    """The Keras class or function a config names, once the registry allows it.

    Args:
        namespace: the table to look in, e.g. ``LAYERS``.
        name: the name as the config spells it.
        where: the config location, for the error.
        keras: the imported Keras module.

    Returns:
        The class or function; for an alias Keras resolves itself (``acc``, ``mse``), the name.

    Raises:
        CnnCliError: the name is refused, not yet reviewed, or unknown (with a did-you-mean).
    """
    if namespace.any_case and name not in namespace.classified():
        name = {n.lower(): n for n in namespace.classified()}.get(name.lower(), name)
    refusal = namespace.refused.get(name)
    if refusal is not None:
        raise CnnCliError(
            f"{namespace.noun} '{name}' is not allowed: {refusal.reason}",
            where=where.child("type"),
            hint=refusal.hint,
        )
    if name in namespace.aliases:
        return name
    if name in namespace.allowed or name in namespace.confined:
        _require_package(namespace, name, where)
        return getattr(keras_module(keras, namespace), name)
    if name in exported_names(keras, namespace):
        raise CnnCliError(
            f"{namespace.noun} '{name}' is not yet reviewed by cnncli",
            where=where,
            hint="use another one, or classify it in cnncli/model/registry.py",
        )
    usable = namespace.usable()
    raise CnnCliError(
        namespace.unknown.format(noun=namespace.noun, name=name),
        where=where,
        hint=did_you_mean(name, usable, namespace.fallback or f"known: {', '.join(usable)}"),
    )


# ---------------------------------------------------------------------------------------------
# Callbacks that write files: confined to the run folder


#: The fields Keras formats a callback's path with besides the logged values, as integers.
COUNTER_FIELDS = ("epoch", "batch")


def confine_path(
    value: Any, where: Location, run_dir: Path | None, logs: Collection[str] | None = None
) -> Any:
    """A callback's output path resolved inside the run folder, or refused.

    Args:
        value: the path the config gives, relative to the run folder.
        where: the config key holding it, e.g. ``fit.callbacks[0].filename``.
        run_dir: the run's staging folder; None (validate) only checks the path.
        logs: the names training logs (``loss``, ``val_loss``, the metrics), which a
            ``{field}`` besides ``epoch`` and ``batch`` must be; None checks no names.

    Returns:
        ``run_dir / value`` (its folders created), or the checked relative path when
        ``run_dir`` is None.

    Raises:
        CnnCliError: the path is absolute, leaves the run (also through a symbolic link in
            it), is hidden, names a file cnncli writes itself, or holds a format field other
            than a plain number (``{epoch:02d}``), a broken template, a field that is not
            logged, or one whose width makes a name longer than a file name may be.
    """
    from cnncli import runs  # the run's own file names; runs imports data, so only when needed

    hint = _IN_THE_RUN
    shown = short_repr(value)  # a 100 KB path must not fill the one line
    if not isinstance(value, str) or not value.strip():
        raise CnnCliError(
            f"expected a path inside the run folder, got {shown}", where=where, hint=hint
        )
    if "\\" in value or "://" in value or value.startswith("~") or "\x00" in value:
        raise CnnCliError(f"{shown} is not a plain relative path", where=where, hint=hint)
    path = PurePosixPath(value)
    if path.is_absolute():
        raise CnnCliError(
            f"{shown} is an absolute path; callbacks write only inside the run folder",
            where=where,
            hint=hint,
        )
    parts = [part for part in path.parts if part != "."]
    if ".." in parts:
        raise CnnCliError(f"{shown} leaves the run folder", where=where, hint=hint)
    if not parts or any(part.startswith(".") for part in parts):
        raise CnnCliError(
            f"{shown} names the run folder itself or a hidden file in it", where=where, hint=hint
        )
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in parts)
    if longest > NAME_MAX:  # the OS refuses it only when the callback writes, after epoch 1
        raise CnnCliError(
            f"{shown} holds a name of {longest} bytes, but a file or folder name"
            f" holds at most {NAME_MAX}",
            where=where,
            hint="choose a shorter name",
        )
    reserved = {
        getattr(runs, name)
        for name in dir(runs)
        if name.endswith(("_FILENAME", "_DIRNAME")) and isinstance(getattr(runs, name), str)
    }
    if parts[0] in reserved:
        raise CnnCliError(
            f"{shown} would overwrite the run's own {parts[0]}", where=where, hint=hint
        )
    _check_template(value, shown, where, logs)
    relative = PurePosixPath(*parts)
    if run_dir is None:
        return str(relative)
    current = run_dir
    for part in relative.parts:  # a resumed run's staging folder may hold a planted link
        current = current / part
        if current.is_symlink():
            raise CnnCliError(
                f"{shown} passes through a symbolic link in the run folder"
                f" ({current.relative_to(run_dir).as_posix()})",
                where=where,
                hint="remove the link from the run folder, or choose another path",
            )
    if "{" not in str(relative.parent):  # CSVLogger opens its file without creating folders
        try:
            (run_dir / relative.parent).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CnnCliError(
                f"cannot create '{relative.parent}' in the run: {exc.strerror}",
                where=where,
                hint="use a shorter path made of plain folder names",
            ) from exc
    return str(run_dir / relative)


def _check_template(value: str, shown: str, where: Location, logs: Collection[str] | None) -> None:
    """The ``{field}`` parts of a callback's path, as ModelCheckpoint will format them after
    each epoch: refused here, before training, if that would fail or make too long a name."""
    hint = "use fields like {epoch:02d} or {val_loss:.2f}"
    try:
        fields = [
            (name, spec or "", conv) for _, name, spec, conv in string.Formatter().parse(value)
        ]
    except ValueError as exc:
        raise CnnCliError(
            f"{shown} is not a valid name template ({exc})",
            where=where,
            hint="write a literal brace as {{ or }}, and a field as {epoch:02d}",
        ) from None
    known = [*COUNTER_FIELDS, *logs] if logs is not None else None
    for name, spec, conversion in fields:
        if name is None:
            continue
        # ModelCheckpoint formats its path with the epoch and logs: allow plain numbers only,
        # since a fill character ({epoch:/>4}) could write '/' or '..' into the path
        if not name.isidentifier() or conversion or not _plain_number_format(spec):
            raise CnnCliError(
                f"{shown} has a format field other than a plain number", where=where, hint=hint
            )
        if any(int(digits) > NAME_MAX for digits in re.findall(r"\d+", spec)):
            raise CnnCliError(
                f"{shown} formats {{{name}}} wider than the {NAME_MAX} bytes a file name may have",
                where=where,
                hint=hint,
            )
        if known is not None and name not in known:
            raise CnnCliError(
                f"{shown} has the field {{{name}}}, which training does not log",
                where=where,
                hint=did_you_mean(name, known, f"use one of: {', '.join(known)}"),
            )
    values = {name: 1 if name in COUNTER_FIELDS else 1.0 for name, _, _ in fields if name}
    try:
        formatted = value.format(**values)
    except ValueError as exc:  # {loss:d}: a logged value is a float
        raise CnnCliError(f"{shown} cannot be formatted: {exc}", where=where, hint=hint) from None
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in formatted.split("/"))
    if longest > NAME_MAX:
        raise CnnCliError(
            f"{shown} makes a name of {longest} bytes (at epoch 1), but a file or folder name"
            f" holds at most {NAME_MAX}",
            where=where,
            hint="use narrower fields or a shorter name",
        )


def _plain_number_format(spec: str) -> bool:
    """A format spec without fill, alignment or alternate form: digits, '.', and a type."""
    return all(char.isdigit() or char in ".defgn%" for char in spec)
