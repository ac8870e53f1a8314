"""Which columns of a CSV are features (numeric or categorical) and which is the label, and
what kind of label it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.config.checks import label_listed_as_feature
from cnncli.config.models import Config
from cnncli.data.cells import is_numeric
from cnncli.data.preprocess import task_of
from cnncli.errors import CnnCliError, Location, did_you_mean

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Columns:
    """Which columns of a CSV are features (numeric or categorical) and which is the label."""

    features: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str


def choose_columns(
    config: Config, header: list[str], sample: pd.DataFrame | None = None
) -> Columns:
    """Match the config's label and feature names against the header.

    A feature column is categorical when most of its non-empty cells are not numbers; a
    column of numbers with a few text cells stays numeric, and ``load_dataset`` reports the text.

    Raises:
        CnnCliError: a named column is missing (with a did-you-mean and the columns there are).
    """
    label = config.data.label or header[-1]
    _require_column(config, header, label, "data.label")
    problem = label_listed_as_feature(config, label)
    if problem is not None:
        raise problem
    if config.data.features:
        for index, name in enumerate(config.data.features):
            _require_column(config, header, name, f"data.features[{index}]")
        features = tuple(config.data.features)
    else:
        features = tuple(name for name in header if name != label)
    if not features:
        raise CnnCliError(
            "no feature columns left besides the label",
            where=config.locate("data"),
            hint="a CSV needs at least one feature column next to the label",
        )
    categorical: tuple[str, ...] = ()
    if sample is not None:
        categorical = tuple(name for name in features if not mostly_numeric(sample[name]))
    return Columns(features=features, categorical=categorical, label=label)


def _require_column(config: Config, header: list[str], name: str, key: str) -> None:
    if name in header:
        return
    listed = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    hint = " ".join(filter(None, [did_you_mean(name, header), f"columns are: {listed}"]))
    raise CnnCliError(
        f"column '{name}' is not in {Path(config.data.path).name}",
        where=config.locate(key),
        hint=hint,
    )


def mostly_numeric(series: pd.Series) -> bool:
    """Numbers, or text cells of which at least half parse as numbers (typos, not categories)."""
    import pandas as pd

    if is_numeric(series):
        return True
    if pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna()
    if present.empty:
        return True
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    return bool(parsed.notna().sum() * 2 >= len(present))


def infer_task(labels: np.ndarray) -> str:
    """Text or few distinct integers → classification; other numbers → regression."""
    labels = np.asarray(labels)
    kind = labels.dtype.kind
    text = kind in "OUSb"
    whole = kind in "iu" or (kind == "f" and bool(np.all(np.mod(labels, 1) == 0)))
    return task_of(text, whole, 0 if text or not whole else len(np.unique(labels)))


def label_values(labels: np.ndarray) -> np.ndarray:
    """Labels normalised for class lookup: whole floats become ints, text stays text."""
    array = np.asarray(labels)
    if array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0):
        return array.astype(np.int64)
    if array.dtype.kind == "O":
        return np.asarray([str(value) for value in array])
    return array


def require_two_classes(classes: Any, where: Location, counted: str = "") -> None:
    """A classification label needs at least two classes.

    Args:
        classes: the distinct label values found.
        where: what the message points at (the label column, or ``data.label``).
        counted: where they were counted, e.g. ``in all 10 rows``, ``in the training rows``.

    Raises:
        CnnCliError: one class or none.
    """
    if len(classes) >= 2:
        return
    found = np.asarray(classes).tolist()  # plain str/int, so messages read 'a', not np.str_('a')
    what = f"a single class ({found[0]!r})" if found else "no class"
    raise CnnCliError(
        f"the label column has {what}" + (f" {counted}" if counted else ""),
        where=where,
        hint="classification needs at least two classes; check data.label",
    )
