"""Array helpers the renderer's per-pixel steps share: table lookups through cv2.LUT and named work arrays
kept from one image to the next."""

from __future__ import annotations

import cv2
import numpy as np


def lookup(table: np.ndarray, index: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """table[index] as float32 (into `out` when given). A uint8 index goes through cv2.LUT (several times
    faster than np.take); index 255 then reads the table's last entry, so -1 cast to uint8 means "the last
    one" either way."""
    table = np.asarray(table, np.float32)
    if index.dtype == np.uint8 and len(table) <= 256:
        lut = np.full(256, table[-1], np.float32)
        lut[:len(table)] = table
        return cv2.LUT(index, lut, dst=out)
    return np.take(table, index, out=out)


class Scratch:
    """Named work arrays kept from one image to the next (both views, every frame of a drive).

    Writing into an array that is already there is several times faster than making a new one for every
    intermediate result: no allocation, and the memory is warm in the cache. Names are local to a Scratch;
    `part(prefix)` gives a Scratch whose names cannot clash with its parent's. Not for arrays that leave
    the function that filled them, and not to be shared between threads."""

    def __init__(self, arrays: dict | None = None, prefix: str = ""):
        self._arrays = {} if arrays is None else arrays
        self._prefix = prefix

    def __call__(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """The array called `name` of this shape and dtype (its contents are whatever was left there)."""
        key = (self._prefix + name, tuple(shape), np.dtype(dtype))
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = np.empty(shape, dtype)
        return array

    def part(self, prefix: str) -> Scratch:
        return Scratch(self._arrays, f"{self._prefix}{prefix}/")
