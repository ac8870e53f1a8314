"""CSV cells built with NumPy, and cells made safe for spreadsheets.

Every column of a chunk is a ``(rows, width)`` uint8 matrix of characters and a mask of the
ones in use; a row is its columns side by side, and the output is the masked characters in
order: one NumPy pass per column instead of a Python call per cell. A cell a spreadsheet would
run as a formula is neutralised first.
"""

from __future__ import annotations

import numpy as np

#: A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula (numbers stay as they are)."""
    if text.startswith(FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def csv_cell(text: str) -> str:
    """One safe CSV cell: formula-neutralised, then quoted if it needs quotes."""
    text = neutralise(text)
    if any(char in text for char in (",", '"', "\n", "\r")):
        return '"' + text.replace('"', '""') + '"'
    return text


#: A column of cells: the character matrix and the mask of characters in use (None: all).
Cells = tuple[np.ndarray, "np.ndarray | None"]


class TextTable:
    """A few fixed strings (class names) picked per row by index."""

    def __init__(self, texts: list[str]) -> None:
        self.matrix, self.mask = text_cells(texts)

    def cells(self, index: np.ndarray) -> Cells:
        return self.matrix[index], None if self.mask is None else self.mask[index]


def text_cells(texts: list[str]) -> Cells:
    """Strings as one column of cells, left-aligned, the padding masked off."""
    encoded = [text.encode() for text in texts]
    width = max((len(b) for b in encoded), default=1) or 1
    matrix = np.zeros((len(encoded), width), dtype=np.uint8)
    if encoded:
        matrix[:] = np.frombuffer(
            b"".join(b.ljust(width, b"\0") for b in encoded), dtype=np.uint8
        ).reshape(-1, width)
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    mask = np.arange(width) < lengths[:, None]
    return matrix, None if mask.all() else mask


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers → ``(rows, width)`` ASCII digits, right-aligned, zero-padded."""
    digits = np.empty((width, len(values)), dtype=np.uint8)  # a digit's row is contiguous
    small = width <= 9  # fits uint32, whose division is twice as fast as int64's
    rest = values.astype(np.uint32 if small else np.int64)
    ten = np.uint32(10) if small else 10
    for position in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, ten)
        digits[position] = digit
    digits += ord("0")
    return digits.T


def integer_cells(values: np.ndarray) -> Cells:
    """Non-negative integers, right-aligned digits with the leading zeros masked off."""
    values = np.asarray(values, dtype=np.int64)
    width = len(str(int(values.max()))) if len(values) else 1
    if width == 1:
        return digits(values, 1), None
    powers = 10 ** np.arange(width - 1, 0, -1, dtype=np.int64)
    used = np.ones((len(values), width), dtype=bool)
    used[:, :-1] = values[:, None] >= powers
    return digits(values, width), used


def fixed_cells(values: np.ndarray, decimals: int) -> Cells:
    """Floats as ``-12.345678``, what ``f"{v:.6f}"`` prints (to the last digit's rounding),
    without a Python call per value."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all() or (np.abs(values) >= 1e15).any():
        return text_cells([f"{v:.{decimals}f}" for v in values.tolist()])
    scaled = np.rint(np.abs(values) * 10**decimals).astype(np.int64)
    whole, fraction = np.divmod(scaled, 10**decimals)
    wholedigits, whole_used = integer_cells(whole)
    negative = (values < 0) & (scaled > 0)
    rows, width = len(values), wholedigits.shape[1]
    matrix = np.empty((rows, 1 + width + 1 + decimals), dtype=np.uint8)
    matrix[:, 0] = ord("-")
    matrix[:, 1 : 1 + width] = wholedigits
    matrix[:, 1 + width] = ord(".")
    matrix[:, 2 + width :] = digits(fraction, decimals)
    if whole_used is None and not negative.any():  # probabilities: a fixed width, no mask
        return matrix[:, 1:], None
    used = np.ones(matrix.shape, dtype=bool)
    used[:, 0] = negative
    if whole_used is not None:
        used[:, 1 : 1 + width] = whole_used
    return matrix, used


def join_rows(columns: list[Cells]) -> bytes:
    """Columns of cells → CSV bytes, comma-separated, one line per row."""
    rows = len(columns[0][0])
    if rows == 0:
        return b""
    width = sum(matrix.shape[1] + 1 for matrix, _ in columns)
    text = np.empty((rows, width), dtype=np.uint8)
    used = None if all(mask is None for _, mask in columns) else np.ones((rows, width), dtype=bool)
    start = 0
    for matrix, mask in columns:
        end = start + matrix.shape[1]
        text[:, start:end] = matrix
        text[:, end] = ord(",")
        if mask is not None:
            used[:, start:end] = mask  # type: ignore[index]
        start = end + 1
    text[:, -1] = ord("\n")
    return text.tobytes() if used is None else text[used].tobytes()
