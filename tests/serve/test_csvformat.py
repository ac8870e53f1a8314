"""The NumPy CSV formatter prints what Python and the csv module would, and defuses formulas."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from cnncli.serve.csvformat import (
    TextTable,
    csv_cell,
    fixed_cells,
    integer_cells,
    join_rows,
    neutralise,
    text_cells,
)

# ---------------------------------------------------------------------------------------------
# Formatting


def test_fixed_cells_print_like_python_format():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.random(500), -rng.random(50) * 1000, rng.normal(size=50) * 1e6, [0.0, 1.0, -0.0, 0.5]]
    )
    text = join_rows([fixed_cells(values, 6)]).decode().splitlines()
    assert [float(cell) for cell in text] == pytest.approx(values, abs=5e-7)
    assert text == [f"{v:.6f}".replace("-0.000000", "0.000000") for v in values]


def test_probabilities_are_fixed_width_without_a_mask():
    matrix, mask = fixed_cells(np.array([0.0, 0.25, 1.0], dtype=np.float32), 6)
    assert mask is None
    assert join_rows([(matrix, mask)]) == b"0.000000\n0.250000\n1.000000\n"


def test_non_finite_values_fall_back_to_python_formatting():
    text = join_rows([fixed_cells(np.array([np.nan, np.inf, 1.5]), 2)])
    assert text == b"nan\ninf\n1.50\n"


def test_join_rows_matches_the_csv_module():
    ordinals = np.array([0, 9, 10, 12345, 7])
    labels = TextTable([csv_cell(c) for c in ["low", "a,b", '"q"']])
    index = np.array([0, 1, 2, 1, 0])
    keys = ["=SUM(A1)", "plain", "", "Smith, J", "-3"]
    text = join_rows(
        [
            text_cells([csv_cell(k) for k in keys]),
            integer_cells(ordinals),
            labels.cells(index),
        ]
    )
    rows = list(csv.reader(io.StringIO(text.decode())))
    names = ["low", "a,b", '"q"']
    assert rows == [
        [neutralise(k), str(o), names[i]] for k, o, i in zip(keys, ordinals, index, strict=True)
    ]


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-5", "-5"),
        ("+7.5", "+7.5"),
        ("-1e3", "-1e3"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised(cell, safe):
    assert neutralise(cell) == safe


def test_csv_cell_quotes_after_neutralising():
    assert csv_cell('=HYPERLINK("x")') == '"\'=HYPERLINK(""x"")"'
    assert csv_cell("a\nb") == '"a\nb"'
