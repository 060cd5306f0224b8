"""A mip-mapped atlas of the procedural textures (textures.py), sampled from surface coordinates, and the
process's pool of texture variants that every scene draws from.

Mip-mapping keeps distant ground from aliasing into view-dependent noise.
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np

from dla_perception.synthetic.arrays import Scratch, lookup
from dla_perception.synthetic.textures import TILE_KINDS, fine_grain, make_tile

_PAD = 2  # texels of wrapped border around every tile and level, for bilinear reads at the seam


# Scenes draw their textures from a pool of this many variants per kind (one atlas per process and tile size:
# up to 125 MB of uint8 RGBA mip levels at 256 texels), then tint and scale each use.
TEXTURE_VARIANTS = 16


GRAIN_FREQUENCY = 8  # grain periods per texture tile side


_GRAIN_SEED = 1000  # the grain's random stream, apart from every kind's


@functools.lru_cache(maxsize=2 * TEXTURE_VARIANTS)
def _grain_levels(variant: int, size: int) -> tuple[np.ndarray, ...]:
    """The grain under each mip level of a size-texel tile, uint8 (mean 127.5): level L holds the grain
    reduced to (size >> L) / GRAIN_FREQUENCY texels (down to 1), repeated GRAIN_FREQUENCY times each way."""
    grain = fine_grain(np.random.default_rng([_GRAIN_SEED, int(variant), int(size)]), size)
    levels = []
    for level in range(mip_levels(size)):
        side = max((size >> level) // GRAIN_FREQUENCY, 1)
        reduced = cv2.resize(grain, (side, side), interpolation=cv2.INTER_AREA)
        repeats = (size >> level) // side
        levels.append(np.round(np.tile(reduced, (repeats, repeats)) * 255).astype(np.uint8))
    return tuple(levels)


def mip_levels(size: int) -> int:
    """Mip levels of a size-texel tile: size, size/2, ... down to 8 texels."""
    return int(np.log2(size)) - 2


def tile_mips(kind: str, variant: int, size: int) -> tuple[np.ndarray, ...]:
    """Variant number `variant` of a texture kind as uint8 RGBA mip levels (size, size/2, ... 8), each padded
    by wrapping. Alpha is the fine grain (_grain_levels): one remap reads colour and grain together, and
    atlases are assembled by plain copies."""
    seed = [TILE_KINDS.index(kind) if kind in TILE_KINDS else 0, int(variant), int(size)]
    tile = make_tile(kind, np.random.default_rng(seed), size)
    levels = []
    for level, grain in enumerate(_grain_levels(variant, size)):
        if level:
            tile = cv2.resize(tile, (size >> level, size >> level), interpolation=cv2.INTER_AREA)
        rgba = np.dstack([np.round(tile * 255).astype(np.uint8), grain])
        levels.append(np.pad(rgba, ((_PAD, _PAD), (_PAD, _PAD), (0, 0)), mode="wrap"))
    for level in levels:
        level.setflags(write=False)
    return tuple(levels)


class TextureAtlas:
    """Tiles and their mip levels in one uint8 RGBA image, so that shading a whole view is one `cv2.remap`
    call whatever the number of materials. Made with room for `capacity` tiles of one size; `put` fills a
    cell. (A large image is mapped as zero pages that take memory only once written: cells never filled
    cost next to nothing.)"""

    def __init__(self, tile_size: int, capacity: int):
        if capacity < 1:
            raise ValueError("an atlas needs room for at least one tile")
        self.tile_size = size = int(tile_size)
        self.levels = mip_levels(size)
        widths = [(size >> level) + 2 * _PAD for level in range(self.levels)]
        self._level_x = np.cumsum([0, *widths[:-1]]).astype(np.float32) + _PAD - 0.5
        self._level_scale = np.array([0.5 ** level for level in range(self.levels)], np.float32)
        # tiles on a grid of cells, each cell one tile's levels side by side (remap wants < 32767 px sides)
        cell_height, cell_width = size + 2 * _PAD, sum(widths)
        columns = max(1, int(np.ceil(np.sqrt(capacity * cell_height / cell_width))))
        rows = -(-capacity // columns)
        index = np.arange(capacity)
        self._tile_x = ((index % columns) * cell_width).astype(np.float32)
        self._tile_y = ((index // columns) * cell_height).astype(np.float32) + _PAD - 0.5
        self.image = np.zeros((rows * cell_height, columns * cell_width, 4), np.uint8)

    @classmethod
    def of(cls, tiles: list[tuple[np.ndarray, ...]]) -> TextureAtlas:
        """An atlas of exactly these tiles, numbered in order: each its padded uint8 RGBA mip levels, as
        tile_mips returns them (RGBA: OpenCV's remap has a vectorised path for 4 channels, none for 3)."""
        if not tiles:
            raise ValueError("an atlas needs at least one tile")
        atlas = cls(tiles[0][0].shape[0] - 2 * _PAD, len(tiles))
        for index, levels in enumerate(tiles):
            atlas.put(index, levels)
        return atlas

    def put(self, index: int, levels: tuple[np.ndarray, ...]) -> None:
        """Copy one tile's padded mip levels into cell `index`."""
        size = self.tile_size
        padded = size + 2 * _PAD
        if len(levels) != self.levels or levels[0].shape != (padded, padded, 4):
            raise ValueError(f"tile {index}: not {self.levels} padded RGBA levels of a {size}-texel tile")
        y0 = int(self._tile_y[index] + 0.5) - _PAD
        for level, image in enumerate(levels):
            x0 = int(self._tile_x[index]) + int(self._level_x[level] + 0.5) - _PAD
            self.image[y0:y0 + image.shape[0], x0:x0 + image.shape[1]] = image

    def _wrapped(self, u: np.ndarray, out: np.ndarray) -> np.ndarray:
        """u wrapped into [0, tile size), into `out`: wrapping once is enough, as (u * scale) mod (size *
        scale) = scale * (u mod size) at every level, and it is cheaper than np.mod. remap reads texel i's
        centre at i; the offsets hold the -0.5."""
        size = np.float32(self.tile_size)
        turns = np.multiply(u, 1 / size, out=out)
        np.floor(turns, out=turns)
        turns *= size
        return np.subtract(u, turns, out=turns)

    def sample(self, tile: np.ndarray | None, u: np.ndarray, v: np.ndarray, lod: np.ndarray,
               scratch: Scratch | None = None, tile_table: np.ndarray | None = None) -> np.ndarray:
        """Bilinear samples of the mip level nearest to lod: HxWx4 uint8, RGB and grain.

        One remap, where trilinear filtering (the two levels around lod, blended) takes two and a blend that
        costs as much as a third; the picture differs by well under one grey level on average, since the
        levels are close to each other wherever lod sits between them. The level follows the surface's
        distance and slant, which both views share (the slant nearly): the choice is no stereo cue.

        tile: HxW int index of the tile per pixel (None: tile 0 everywhere), or with `tile_table` an index
        into that table of tile numbers (a surface index, say: one lookup fewer than resolving it first);
        u, v: level-0 texel coordinates (any real value, the tile repeats); lod: mip level per pixel (0 =
        full resolution). With `scratch`, work arrays and the result live there (valid until its next use);
        the inputs are never changed.
        """
        work = scratch or Scratch()
        shape = u.shape
        level = np.add(lod, np.float32(0.5), out=work("level", shape))  # rounded by the cast below
        np.clip(level, np.float32(0.0), np.float32(self.levels - 0.5), out=level)
        nearest = work("nearest", shape, np.uint8)
        np.copyto(nearest, level, casting="unsafe")  # = level.astype(np.uint8), truncating
        if tile is None:
            tile_x, tile_y = self._tile_x[0], self._tile_y[0]
        else:
            table_x, table_y = self._tile_x, self._tile_y
            if tile_table is not None:
                tile_table = np.asarray(tile_table, np.intp)
                table_x, table_y = table_x[tile_table], table_y[tile_table]
            elif len(table_x) <= 256 and tile.dtype != np.uint8:
                tile = tile.astype(np.uint8)
            tile_x = lookup(table_x, tile, work("tile_x", shape))
            tile_y = lookup(table_y, tile, work("tile_y", shape))
        scale = lookup(self._level_scale, nearest, work("scale", shape))
        offset = lookup(self._level_x, nearest, work("offset", shape))
        offset += tile_x
        map_x = np.multiply(self._wrapped(u, work("map_x", shape)), scale, out=work("map_x", shape))
        map_x += offset
        map_y = np.multiply(self._wrapped(v, work("map_y", shape)), scale, out=work("map_y", shape))
        map_y += tile_y
        return cv2.remap(self.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
                         dst=work("sample", shape + (4,), np.uint8))


class TexturePool:
    """Every variant of every texture kind at one tile size, in one atlas shared by all scenes of the
    process: a variant is drawn into its cell the first time a scene asks for it, so a new scene costs no
    texture work at all once the pool is warm (tints and scales still make every scene's surfaces differ).
    Safe to share between threads."""

    def __init__(self, tile_size: int):
        self.atlas = TextureAtlas(tile_size, len(TILE_KINDS) * TEXTURE_VARIANTS)
        self._made: set[int] = set()
        self._lock = threading.Lock()

    def tile(self, kind: str, variant: int) -> int:
        """The atlas index of this variant of this kind, drawn first if no scene has used it yet."""
        if kind not in TILE_KINDS or not 0 <= variant < TEXTURE_VARIANTS:
            raise ValueError(f"no texture {kind!r} variant {variant}: kinds are {', '.join(TILE_KINDS)}, "
                             f"variants 0..{TEXTURE_VARIANTS - 1}")
        index = TILE_KINDS.index(kind) * TEXTURE_VARIANTS + int(variant)
        with self._lock:
            if index not in self._made:
                self.atlas.put(index, tile_mips(kind, variant, self.atlas.tile_size))
                self._made.add(index)
        return index


@functools.cache
def texture_pool(tile_size: int) -> TexturePool:
    """The process's texture pool for this tile size."""
    return TexturePool(tile_size)
