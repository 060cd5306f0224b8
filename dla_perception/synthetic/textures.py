"""Procedural, tileable surface textures: one maker per kind of surface, drawn from a seed.

Textures live on surfaces (metres on the surface, converted to texels), never on the image, so the right view
samples the same texture at the same surface point as the left one: that is what makes the second view a true
second view. texture_atlas.py mip-maps them into the atlas views are shaded from.
"""

from __future__ import annotations

import cv2
import numpy as np

TILE_KINDS: tuple[str, ...] = (
    "asphalt", "paving", "bricks", "concrete", "plaster_windows", "planks", "cardboard", "stripes",
    "plastic", "fabric", "grass", "metal", "poster", "clouds",
)


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


def fine_grain(rng, size):
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
