"""Tileable surface patterns of many families and scales for the training scene families (families.py).

A stereo network must not learn what surfaces look like, only that both views see the same one: so the
families draw from patterns that share nothing with the street renderer's materials (textures.py) or with
the held-out family's value noise: dead leaves (occluding discs and boxes with power-law sizes), spectral
noise of random slope and anisotropy, gratings, tiles, checkers, dot lattices, Voronoi cells, glyphs,
scratches, weaves, smooth gradients and flat paint (little or repetitive texture on purpose). Each pattern is
a 256-texel tile, periodic, stored as uint8 RGB mip levels; a surface then scales, turns, tints and changes
the contrast of its tile, so the same tile never looks the same twice.

Tiles derive from (kind, variant) alone (`numpy.random.SeedSequence`), and each process keeps the ones it
has drawn: a scene costs no pattern work after the first few hundred.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

PATTERN_KINDS: tuple[str, ...] = (
    "dead_leaves",
    "spectral",
    "grating",
    "tiles",
    "checker",
    "dots",
    "cells",
    "glyphs",
    "scratches",
    "weave",
    "gradient",
    "flat",
)
VARIANTS = 24  # tiles per kind
TILE = 256
_SALT = 0x9A77E2


@functools.lru_cache(maxsize=len(PATTERN_KINDS) * VARIANTS)
def pattern_mips(kind: str, variant: int) -> tuple[np.ndarray, ...]:
    """Mip levels (256, 128, ... 4 texels) of one tile, uint8 RGB, read-only."""
    if kind not in PATTERN_KINDS:
        raise ValueError(f"unknown pattern kind {kind!r}; known: {', '.join(PATTERN_KINDS)}")
    rng = np.random.default_rng(np.random.SeedSequence([_SALT, PATTERN_KINDS.index(kind), int(variant)]))
    tile = np.clip(_MAKERS[kind](rng, TILE), 0.0, 1.0)
    levels = [tile]
    while levels[-1].shape[0] > 4:
        levels.append(cv2.resize(levels[-1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    out = tuple(np.round(level * 255).astype(np.uint8) for level in levels)
    for level in out:
        level.setflags(write=False)
    return out


def _palette(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` colours around a random hue, some saturated, some grey."""
    base = rng.uniform(0.05, 0.95, 3)
    spread = rng.uniform(0.05, 0.6)
    colours = base + spread * rng.uniform(-1, 1, (count, 3))
    grey = rng.random() < 0.3
    if grey:
        colours = np.repeat(colours.mean(axis=1, keepdims=True), 3, axis=1)
    return np.clip(colours, 0.0, 1.0)


def _ramp(values: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Scalar field in [0, 1] -> RGB along a piecewise-linear ramp through `colours`."""
    stops = np.linspace(0.0, 1.0, len(colours))
    v = np.clip(values, 0.0, 1.0)
    return np.stack([np.interp(v, stops, colours[:, c]) for c in range(3)], axis=-1)


def _normalise(field: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(field, (1, 99))
    return (field - lo) / max(hi - lo, 1e-6)


def _spectral_field(rng: np.random.Generator, size: int, slope: float, stretch: float = 1.0) -> np.ndarray:
    """Periodic noise with power spectrum ~ 1/f^slope (random phases), normalised to about [0, 1]."""
    fy = np.fft.fftfreq(size)[:, None] * stretch
    fx = np.fft.fftfreq(size)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    amplitude = radius ** (-slope / 2)
    amplitude[0, 0] = 0.0
    phases = np.exp(2j * np.pi * rng.random((size, size)))
    return _normalise(np.real(np.fft.ifft2(amplitude * phases)))


def _spectral(rng, size):
    field = _spectral_field(rng, size, rng.uniform(1.0, 3.2), stretch=float(np.exp(rng.uniform(0, 1.6))))
    return _ramp(field, _palette(rng, int(rng.integers(2, 5))))


def _draw_wrapped(canvas: np.ndarray, draw, size: int) -> None:
    """Call draw(canvas, dx, dy) for the 9 periodic copies, so shapes over an edge come in at the other."""
    for dy in (-size, 0, size):
        for dx in (-size, 0, size):
            draw(canvas, dx, dy)


def _dead_leaves(rng, size):
    colours = _palette(rng, 12)
    canvas = np.zeros((size, size, 3), np.float32) + colours[0]
    r_min, r_max = rng.uniform(1.5, 4.0), size * rng.uniform(0.1, 0.35)
    count = int(rng.integers(150, 600))
    # radii with density ~ r^-3 between r_min and r_max (scale invariance), drawn by inverse CDF
    u = rng.random(count)
    radii = 1.0 / np.sqrt(u / r_max**2 + (1 - u) / r_min**2)
    for radius in radii[np.argsort(-radii)]:  # large first, small on top: every scale stays visible
        x, y = rng.uniform(0, size, 2)
        colour = tuple(float(c) for c in colours[rng.integers(len(colours))] * rng.uniform(0.7, 1.2))
        if rng.random() < 0.6:

            def draw(img, dx, dy, x=x, y=y, r=radius, c=colour):
                cv2.circle(img, (int(x + dx), int(y + dy)), max(1, int(r)), c, -1, cv2.LINE_AA)
        else:
            w, h, a = radius * rng.uniform(0.5, 2), radius * rng.uniform(0.5, 2), rng.uniform(0, 180)

            def draw(img, dx, dy, x=x, y=y, w=w, h=h, a=a, c=colour):
                box = cv2.boxPoints(((x + dx, y + dy), (w, h), a)).astype(np.int32)
                cv2.fillConvexPoly(img, box, c, cv2.LINE_AA)

        _draw_wrapped(canvas, draw, size)
    return canvas


def _grating(rng, size):
    field = np.zeros((size, size))
    yy, xx = np.mgrid[0:size, 0:size] / size
    for _ in range(int(rng.integers(1, 3))):
        kx, ky = int(rng.integers(-24, 25)), int(rng.integers(0, 25))
        if kx == 0 and ky == 0:
            kx = 8
        wave = np.sin(2 * np.pi * (kx * xx + ky * yy) + rng.uniform(0, 2 * np.pi))
        field += np.sign(wave) if rng.random() < 0.5 else wave
    return _ramp(_normalise(field), _palette(rng, 2))


def _tiles(rng, size):
    nx, ny = (int(2 ** rng.integers(1, 5)) for _ in range(2))
    colours = _palette(rng, 6)
    grout = colours[0] * rng.uniform(0.3, 1.3)
    canvas = np.zeros((size, size, 3)) + grout
    w, h = size // nx, size // ny
    gap = int(rng.integers(1, 5))
    offset = rng.random() < 0.5
    for j in range(ny):
        shift = (w // 2) * (j % 2) if offset else 0
        for i in range(nx + 1):
            colour = colours[rng.integers(1, len(colours))] * rng.uniform(0.85, 1.15)
            x0 = i * w + shift
            for dx in (0, -size):
                canvas[j * h + gap : (j + 1) * h, max(0, x0 + gap + dx) : max(0, x0 + w + dx)] = colour
    return canvas + 0.04 * (_spectral_field(rng, size, 2.0)[..., None] - 0.5)


def _checker(rng, size):
    n = int(2 ** rng.integers(1, 6))
    yy, xx = np.mgrid[0:size, 0:size] * n // size
    colours = _palette(rng, 2)
    return np.where(((xx + yy) % 2 == 0)[..., None], colours[0], colours[1])


def _dots(rng, size):
    colours = _palette(rng, 3)
    canvas = np.zeros((size, size, 3), np.float32) + colours[0]
    if rng.random() < 0.5:  # a lattice
        n = int(2 ** rng.integers(2, 6))
        step = size // n
        radius = max(1, int(step * rng.uniform(0.15, 0.45)))
        for j in range(n):
            for i in range(n):
                cv2.circle(
                    canvas,
                    (i * step + step // 2, j * step + step // 2),
                    radius,
                    tuple(float(c) for c in colours[1 + (i + j) % 2]),
                    -1,
                    cv2.LINE_AA,
                )
    else:
        for _ in range(int(rng.integers(40, 400))):
            x, y, r = *rng.uniform(0, size, 2), rng.uniform(1, 8)
            colour = tuple(float(c) for c in colours[rng.integers(1, 3)])
            _draw_wrapped(
                canvas,
                lambda img, dx, dy, x=x, y=y, r=r, c=colour: cv2.circle(
                    img, (int(x + dx), int(y + dy)), int(r), c, -1, cv2.LINE_AA
                ),
                size,
            )
    return canvas


def _cells(rng, size):
    count = int(rng.integers(8, 120))
    points = rng.uniform(0, size, (count, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    best = np.full((size, size), np.inf, np.float32)
    second = best.copy()
    owner = np.zeros((size, size), np.int32)
    for index, (px, py) in enumerate(points):
        dx = np.abs(xx - px)
        dy = np.abs(yy - py)
        d = np.hypot(np.minimum(dx, size - dx), np.minimum(dy, size - dy))  # distance on the torus
        closer = d < best
        second = np.where(closer, best, np.minimum(second, d))
        owner = np.where(closer, index, owner)
        best = np.where(closer, d, best)
    colours = _palette(rng, count)
    canvas = colours[owner]
    edge = np.clip((second - best) / rng.uniform(1.0, 4.0), 0, 1)[..., None]
    return canvas * (rng.uniform(0.2, 0.7) + (1 - rng.uniform(0.2, 0.7)) * edge)


def _glyphs(rng, size):
    colours = _palette(rng, 3)
    masks = np.zeros((2, size, size), np.uint8)  # putText draws on 8-bit images: one mask per ink colour
    letters = list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789#%&@")
    fonts = (
        cv2.FONT_HERSHEY_SIMPLEX,
        cv2.FONT_HERSHEY_DUPLEX,
        cv2.FONT_HERSHEY_COMPLEX,
        cv2.FONT_HERSHEY_PLAIN,
    )
    for _ in range(int(rng.integers(10, 80))):
        text = "".join(rng.choice(letters, int(rng.integers(1, 7))))
        x, y = rng.uniform(0, size, 2)
        scale, thickness = rng.uniform(0.3, 2.0), int(rng.integers(1, 4))
        font = fonts[rng.integers(len(fonts))]
        ink = masks[rng.integers(2)]
        _draw_wrapped(
            ink,
            lambda img, dx, dy, t=text, x=x, y=y, s=scale, k=thickness, f=font: cv2.putText(
                img, t, (int(x + dx), int(y + dy)), f, s, 255, k, cv2.LINE_AA
            ),
            size,
        )
    canvas = np.zeros((size, size, 3)) + colours[0]
    for ink, colour in zip(masks, colours[1:], strict=True):
        alpha = ink[..., None] / 255.0
        canvas = canvas * (1 - alpha) + colour * alpha
    return canvas


def _scratches(rng, size):
    base = _ramp(_spectral_field(rng, size, rng.uniform(1.5, 3.0)), _palette(rng, 2))
    canvas = base.astype(np.float32)
    colours = _palette(rng, 2)
    for _ in range(int(rng.integers(20, 200))):
        x, y = rng.uniform(0, size, 2)
        length, angle = rng.uniform(4, size / 2), rng.uniform(0, np.pi)
        x2, y2 = x + length * np.cos(angle), y + length * np.sin(angle)
        colour = tuple(float(c) for c in colours[rng.integers(2)])
        thickness = int(rng.integers(1, 3))
        _draw_wrapped(
            canvas,
            lambda img, dx, dy, a=(x, y, x2, y2), c=colour, k=thickness: cv2.line(
                img, (int(a[0] + dx), int(a[1] + dy)), (int(a[2] + dx), int(a[3] + dy)), c, k, cv2.LINE_AA
            ),
            size,
        )
    return canvas


def _weave(rng, size):
    n = int(2 ** rng.integers(3, 7))
    yy, xx = np.mgrid[0:size, 0:size] * n / size
    warp = 0.5 + 0.5 * np.cos(2 * np.pi * xx)
    weft = 0.5 + 0.5 * np.cos(2 * np.pi * yy)
    over = (np.floor(xx) + np.floor(yy)) % 2 == 0
    field = np.where(over, warp, weft) * rng.uniform(0.5, 1.0) + 0.2 * _spectral_field(rng, size, 1.5)
    return _ramp(_normalise(field), _palette(rng, 2))


def _gradient(rng, size):
    return _ramp(_spectral_field(rng, size, rng.uniform(4.0, 6.0)), _palette(rng, 2))


def _flat(rng, size):
    colour = _palette(rng, 1)[0]
    faint = rng.uniform(0.0, 0.03) * (_spectral_field(rng, size, rng.uniform(1.0, 3.0)) - 0.5)
    return np.zeros((size, size, 3)) + colour + faint[..., None]


_MAKERS = {
    "dead_leaves": _dead_leaves,
    "spectral": _spectral,
    "grating": _grating,
    "tiles": _tiles,
    "checker": _checker,
    "dots": _dots,
    "cells": _cells,
    "glyphs": _glyphs,
    "scratches": _scratches,
    "weave": _weave,
    "gradient": _gradient,
    "flat": _flat,
}
