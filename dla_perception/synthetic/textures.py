"""Procedural, tileable surface textures and a mip-mapped atlas to sample them from surface coordinates.

Textures live on surfaces (metres on the surface, converted to texels), never on the image, so the right view
samples the same texture at the same surface point as the left one: that is what makes the second view a true
second view. Mip-mapping keeps distant ground from aliasing into view-dependent noise.
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np

TILE_KINDS: tuple[str, ...] = (
    "asphalt", "paving", "bricks", "concrete", "plaster_windows", "planks", "cardboard", "stripes",
    "plastic", "fabric", "grass", "metal", "poster", "clouds",
)

_PAD = 2  # texels of wrapped border around every tile and level, for bilinear reads at the seam
# Scenes draw their textures from a pool of this many variants per kind (one atlas per process and tile size:
# up to 125 MB of uint8 RGBA mip levels at 256 texels), then tint and scale each use.
TEXTURE_VARIANTS = 16


def value_noise(rng: np.random.Generator, size: int, base_cells: int = 4, octaves: int = 4,
                persistence: float = 0.5, cells_y: int | None = None) -> np.ndarray:
    """Tileable multi-octave value noise, size x size float32, roughly in [0, 1].

    Each octave is a periodic random lattice upsampled with bicubic interpolation; `cells_y` smaller than
    `base_cells` stretches the pattern vertically (wood grain, brushed metal).
    """
    total = np.zeros((size, size), np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cx = min(base_cells << octave, size)
        cy = min((cells_y if cells_y is not None else base_cells) << octave, size)
        lattice = rng.random((cy, cx), dtype=np.float32)
        total += amplitude * _periodic_upsample(lattice, size)
        weight += amplitude
        amplitude *= persistence
    return total / weight


def _periodic_upsample(lattice: np.ndarray, size: int) -> np.ndarray:
    """Bicubic upsampling of a periodic lattice to size x size, periodic itself (pads by wrapping)."""
    cy, cx = lattice.shape
    if cy == size and cx == size:
        return lattice
    pad = 2
    padded = np.pad(lattice, pad, mode="wrap")
    sx, sy = size / cx, size / cy
    big = cv2.resize(padded, (round((cx + 2 * pad) * sx), round((cy + 2 * pad) * sy)),
                     interpolation=cv2.INTER_CUBIC)
    oy, ox = round(pad * sy), round(pad * sx)
    return big[oy:oy + size, ox:ox + size]


def _color(rng: np.random.Generator, base: tuple[float, float, float], spread: float) -> np.ndarray:
    """A colour near `base` (linear RGB 0..1), varied by up to `spread` per channel and in brightness."""
    value = np.asarray(base, np.float32) * rng.uniform(1 - spread, 1 + spread)
    value = value + rng.uniform(-spread, spread, 3).astype(np.float32) * 0.3
    return np.clip(value, 0.0, 1.0).astype(np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of two colours (or images) by t in [0, 1] (HxW)."""
    t = np.clip(t, 0.0, 1.0)[..., None]
    return a * (1 - t) + b * t


def make_tile(kind: str, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """One tileable texture, size x size x 3 float32 linear RGB in [0, 1]."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown texture kind {kind!r}; known: {', '.join(TILE_KINDS)}")
    tile = _MAKERS[kind](rng, size)
    return np.clip(tile, 0.0, 1.0).astype(np.float32)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size]
    return yy, xx


def _asphalt(rng, size):
    base = _color(rng, (0.16, 0.16, 0.17), 0.3)
    fine = value_noise(rng, size, 32, 3)
    patches = value_noise(rng, size, 4, 3)
    speck = (rng.random((size, size)) > 0.985).astype(np.float32)
    shade = 0.75 + 0.35 * fine + 0.4 * (patches - 0.5) + 0.6 * speck
    return base * shade[..., None]


def _paving(rng, size):
    slabs = int(rng.choice([2, 4, 8]))
    step = size // slabs
    yy, xx = _grid(size)
    gap = max(1, step // 24)
    joint = ((yy % step) < gap) | ((xx % step) < gap)
    slab_id = (yy // step) * slabs + (xx // step)
    variation = rng.uniform(0.8, 1.15, slabs * slabs).astype(np.float32)[slab_id]
    base = _color(rng, rng.choice([(0.45, 0.43, 0.40), (0.55, 0.35, 0.28), (0.38, 0.38, 0.40)]), 0.2)
    noise = value_noise(rng, size, 16, 4)
    shade = variation * (0.7 + 0.5 * noise)
    shade = np.where(joint, 0.35 * shade, shade)
    return base * shade[..., None]


def _bricks(rng, size):
    rows = int(rng.choice([8, 16]))
    bh = size // rows
    bw = bh * 2
    yy, xx = _grid(size)
    row = yy // bh
    xs = (xx + (row % 2) * (bw // 2)) % size
    col = xs // bw
    mortar_px = max(1, bh // 8)
    mortar = ((yy % bh) < mortar_px) | ((xs % bw) < mortar_px)
    brick_id = row * (size // bw) + col
    palette = rng.choice([(0.50, 0.20, 0.12), (0.60, 0.45, 0.30), (0.35, 0.18, 0.14), (0.55, 0.52, 0.48)])
    base = _color(rng, palette, 0.15)
    bricks = rows * (size // bw)
    # bricks differ mostly in brightness, a little in hue
    variation = rng.uniform(0.7, 1.2, (bricks, 1)) * rng.uniform(0.94, 1.06, (bricks, 3))
    variation = variation.astype(np.float32)[brick_id]
    noise = value_noise(rng, size, 32, 3)
    color = base * variation * (0.75 + 0.4 * noise)[..., None]
    mortar_color = _color(rng, (0.65, 0.63, 0.58), 0.15)
    return np.where(mortar[..., None], mortar_color * (0.8 + 0.3 * noise)[..., None], color)


def _concrete(rng, size):
    base = _color(rng, (0.52, 0.51, 0.49), 0.2)
    noise = value_noise(rng, size, 8, 5, 0.6)
    stains = value_noise(rng, size, 2, 3)
    shade = 0.7 + 0.5 * noise - 0.35 * np.clip(stains - 0.55, 0, 1) * 3
    yy, xx = _grid(size)
    joint = (xx % (size // 2)) < 2
    shade = np.where(joint, shade * 0.6, shade)
    return base * shade[..., None]


def _plaster_windows(rng, size):
    base = _color(rng, tuple(rng.uniform(0.3, 0.8, 3)), 0.15)
    noise = value_noise(rng, size, 8, 4)
    color = base * (0.8 + 0.3 * noise)[..., None]
    yy, xx = _grid(size)
    per_row = int(rng.choice([2, 3]))
    cell = size // per_row
    lx, ly = xx % cell, yy % cell
    margin_x, margin_top, margin_bottom = cell * 0.25, cell * 0.2, cell * 0.3
    window = (lx > margin_x) & (lx < cell - margin_x) & (ly > margin_top) & (ly < cell - margin_bottom)
    frame = window & ~((lx > margin_x + 3) & (lx < cell - margin_x - 3) & (ly > margin_top + 3)
                       & (ly < cell - margin_bottom - 3))
    glass = _mix(_color(rng, (0.10, 0.13, 0.18), 0.3), _color(rng, (0.45, 0.55, 0.65), 0.2),
                 (ly - margin_top) / (cell - margin_top - margin_bottom) * rng.uniform(0.3, 1.0)
                 + 0.2 * value_noise(rng, size, 4, 2))
    color = np.where(window[..., None], glass, color)
    return np.where(frame[..., None], _color(rng, (0.85, 0.85, 0.82), 0.1), color)


def _planks(rng, size):
    count = int(rng.choice([4, 8]))
    step = size // count
    yy, _ = _grid(size)
    plank = yy // step
    grain = value_noise(rng, size, 16, 3, cells_y=2)
    grain = grain.T if rng.random() < 0.5 else grain
    base = _color(rng, (0.45, 0.30, 0.17), 0.25)
    variation = rng.uniform(0.75, 1.15, count).astype(np.float32)[plank]
    shade = variation * (0.65 + 0.6 * grain)
    shade = np.where((yy % step) < max(1, step // 20), shade * 0.35, shade)
    return base * shade[..., None]


def _cardboard(rng, size):
    base = _color(rng, (0.55, 0.40, 0.24), 0.15)
    noise = value_noise(rng, size, 16, 4)
    color = base * (0.8 + 0.35 * noise)[..., None]
    yy, xx = _grid(size)
    tape_y = rng.integers(0, size)
    tape = ((yy - tape_y) % size) < size // 10
    color = np.where(tape[..., None], _color(rng, (0.70, 0.58, 0.40), 0.1), color)
    # a printed label: a dark rectangle with a few stripes of "text"
    x0, y0 = rng.integers(0, size // 2, 2)
    label = (xx > x0) & (xx < x0 + size // 3) & (yy > y0) & (yy < y0 + size // 5)
    text = label & (((yy - y0) // 4) % 2 == 0) & (value_noise(rng, size, 32, 1) > 0.4)
    return np.where(text[..., None], _color(rng, (0.08, 0.08, 0.1), 0.2), color)


def _stripes(rng, size):
    pairs = [((0.80, 0.65, 0.05), (0.05, 0.05, 0.05)), ((0.80, 0.08, 0.06), (0.85, 0.85, 0.85)),
             ((0.15, 0.30, 0.65), (0.85, 0.85, 0.85)), ((0.20, 0.20, 0.22), (0.55, 0.55, 0.55))]
    first, second = pairs[rng.integers(len(pairs))]
    period = size // int(rng.choice([2, 4, 8]))
    yy, xx = _grid(size)
    # rings round a post (v is height on it), stripes along it, or a diagonal warning pattern
    across = (yy, xx, xx + yy)[int(rng.integers(3))]
    band = (across // (period // 2)) % 2
    dirt = value_noise(rng, size, 8, 4)
    color = np.where(band[..., None] == 0, _color(rng, first, 0.1), _color(rng, second, 0.1))
    return color * (0.75 + 0.35 * dirt)[..., None]


def _plastic(rng, size):
    palette = [(0.10, 0.35, 0.12), (0.10, 0.18, 0.45), (0.55, 0.10, 0.08), (0.15, 0.15, 0.15),
               (0.65, 0.50, 0.05), (0.45, 0.45, 0.47)]
    base = _color(rng, palette[rng.integers(len(palette))], 0.15)
    _, xx = _grid(size)
    ribs = 0.9 + 0.1 * np.sin(xx * (2 * np.pi * int(rng.choice([8, 16])) / size))
    noise = value_noise(rng, size, 8, 3)
    return base * (ribs * (0.85 + 0.25 * noise))[..., None]


def _fabric(rng, size):
    base = _color(rng, tuple(rng.uniform(0.05, 0.7, 3)), 0.2)
    yy, xx = _grid(size)
    weave = 0.92 + 0.08 * np.sign(np.sin(xx * np.pi / 2) * np.sin(yy * np.pi / 2))
    folds = value_noise(rng, size, 4, 3, cells_y=2)
    return base * (weave * (0.6 + 0.6 * folds))[..., None]


def _grass(rng, size):
    green = _color(rng, (0.18, 0.32, 0.08), 0.25)
    dirt = _color(rng, (0.33, 0.25, 0.15), 0.2)
    mask = value_noise(rng, size, 4, 4)
    blades = value_noise(rng, size, 64, 2)
    return _mix(green, dirt, (mask - 0.45) * 4) * (0.6 + 0.7 * blades)[..., None]


def _metal(rng, size):
    base = _color(rng, (0.50, 0.52, 0.55), 0.2)
    brushed = value_noise(rng, size, 64, 2, cells_y=1)
    rust_mask = value_noise(rng, size, 8, 3)
    color = base * (0.8 + 0.3 * brushed)[..., None]
    return _mix(color, _color(rng, (0.40, 0.20, 0.08), 0.2), (rust_mask - 0.62) * 6)


def _muted(rng) -> tuple[float, float, float]:
    """A random colour halfway to grey: facades and posters, not a paint box."""
    return tuple(0.5 * rng.uniform(0, 1, 3) + 0.5 * rng.uniform(0.3, 0.6))


def _poster(rng, size):
    yy, xx = _grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    wave_x, wave_y = np.sin(2 * np.pi * xx / size), np.sin(2 * np.pi * yy / size)
    ramp = (np.sin(angle) * wave_x + np.cos(angle) * wave_y) * 0.5 + 0.5
    color = _mix(_color(rng, _muted(rng), 0.2), _color(rng, _muted(rng), 0.2), ramp)
    blobs = value_noise(rng, size, 4, 2)
    color = _mix(color, _color(rng, _muted(rng), 0.2), (blobs - 0.55) * 5)
    return color * (0.9 + 0.2 * value_noise(rng, size, 32, 2))[..., None]


def _clouds(rng, size):
    cover = value_noise(rng, size, 4, 5, 0.55)
    threshold = rng.uniform(0.4, 0.7)
    amount = np.clip((cover - threshold) * 3.5, 0, 1)
    return _mix(np.zeros(3, np.float32), np.ones(3, np.float32), amount)


def _grain(rng, size):
    """Grey fine-grain noise around 0.5 (HxW), laid over every surface at 8x its texture's frequency: the
    grain that close surfaces show (and stereo matching needs) and that far ones average away in the mip
    levels."""
    grain = 0.6 * value_noise(rng, size, 32, 3) + 0.4 * rng.random((size, size), dtype=np.float32)
    return np.clip((grain - grain.mean()) / (grain.std() + 1e-6) * 0.17 + 0.5, 0.0, 1.0)


_MAKERS = {
    "asphalt": _asphalt, "paving": _paving, "bricks": _bricks, "concrete": _concrete,
    "plaster_windows": _plaster_windows, "planks": _planks, "cardboard": _cardboard, "stripes": _stripes,
    "plastic": _plastic, "fabric": _fabric, "grass": _grass, "metal": _metal, "poster": _poster,
    "clouds": _clouds,
}


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


GRAIN_FREQUENCY = 8  # grain periods per texture tile side
_GRAIN_SEED = 1000  # the grain's random stream, apart from every kind's


@functools.lru_cache(maxsize=2 * TEXTURE_VARIANTS)
def _grain_levels(variant: int, size: int) -> tuple[np.ndarray, ...]:
    """The grain under each mip level of a size-texel tile, uint8 (mean 127.5): level L holds the grain
    reduced to (size >> L) / GRAIN_FREQUENCY texels (down to 1), repeated GRAIN_FREQUENCY times each way."""
    grain = _grain(np.random.default_rng([_GRAIN_SEED, int(variant), int(size)]), size)
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
