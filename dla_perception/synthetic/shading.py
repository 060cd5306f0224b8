"""The colour of every pixel of a view before the camera: mip-mapped texture x tint x light (with the fine
grain), distance haze, and the sky where no surface is."""

from __future__ import annotations

import functools
from typing import NamedTuple

import cv2
import numpy as np

from dla_perception.synthetic.arrays import Scratch, lookup
from dla_perception.synthetic.scene_model import Scene, ViewBuffers
from dla_perception.synthetic.texture_atlas import TextureAtlas


class ViewCommon(NamedTuple):
    """What every view of a drive shares: the pixel rays (camera-frame z = 1), their inverse lengths, the
    ground footprint factor of a pixel (1 / (fx * inverse length)), the sky image and work arrays."""

    rays: tuple[np.ndarray, np.ndarray, np.ndarray]
    inverse_length: np.ndarray
    pixel_footprint: np.ndarray
    sky: SkyCache
    scratch: Scratch


class SkyCache:
    """Linear RGB of the sky in every pixel's direction: a gradient from the horizon up, and clouds on a plane
    high above. It depends on the direction only, so both views and all frames of a drive share it. Made on
    demand for the rows that show sky, at half resolution (the sky is smooth; its disparity is unknown)."""

    def __init__(self, scene: Scene, atlas: TextureAtlas, rays):
        self.scene, self.atlas = scene, atlas
        self.rays = [ray[::2, ::2] for ray in rays]
        self.shape = rays[0].shape
        self.image = np.zeros((0, self.shape[1], 3), np.float32)

    def rows(self, count: int) -> np.ndarray:
        """The sky image's first `count` rows (at least)."""
        if count > len(self.image):
            half = (count + 1) // 2 + 1
            small = self._render(*(ray[:half] for ray in self.rays))
            rows = min(2 * half, self.shape[0])
            self.image = cv2.resize(small, (self.shape[1], 2 * half), interpolation=cv2.INTER_LINEAR)[:rows]
        return self.image[:count]

    def _render(self, dx, dy, dz) -> np.ndarray:
        scene = self.scene
        elevation = np.clip(-dy / np.sqrt(dx * dx + dy * dy + dz * dz), 0.0, 1.0)
        up = np.maximum(-dy, np.float32(0.02))
        cloud_scale = np.float32(48.0)
        lod = np.float32(2.0) - np.float32(2.0) * np.log2(np.maximum(elevation, np.float32(0.05)))
        tile = np.full(dx.shape, scene.sky_tile, np.int32)
        cloud = self.atlas.sample(tile, dx / up * cloud_scale, dz / up * cloud_scale, lod)[..., 0]
        cloud = cv2.cvtColor(cloud.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_GRAY2RGB)
        height = cv2.cvtColor(np.sqrt(elevation), cv2.COLOR_GRAY2RGB)
        horizon, zenith = scene.sky_horizon, scene.sky_zenith
        gradient = cv2.add(cv2.multiply(height, tuple(float(c) for c in zenith - horizon) + (0.0,)),
                           tuple(float(c) for c in horizon) + (0.0,))
        return gradient + cloud * (np.float32(0.95) * (0.8 + 0.2 * height) - gradient)


SKY_BAND_PX = 80  # columns per band when the sky above each band is left out of shading


SKY_WORTH_SKIPPING = 0.1  # fraction of the image such bands must leave out to be worth their overhead


def shade_view(view: ViewBuffers, scene: Scene, atlas: TextureAtlas, common: ViewCommon) -> np.ndarray:
    """Linear RGB of a view (0..1): mip-mapped texture * tint * light (with fine grain), distance haze; the
    precomputed sky where no surface is.

    Where much of the view is open sky, it is shaded in bands of columns, each from its first row that
    shows something other than sky: the rows above get the sky's colour without shading work (everything
    here is per pixel, so the result is the same). A full view shades into the drive's work arrays
    (common.scratch) rather than new ones.
    """
    # per-surface tables with one more entry at the end for the sky, which index -1 picks
    tables = {
        "tiles": np.array([s.tile for s in scene.surfaces] + [scene.sky_tile]),
        "scales": np.array([s.texels_per_m for s in scene.surfaces] + [0.0], np.float32),
        "tints": np.array([s.tint for s in scene.surfaces] + [(1.0, 1.0, 1.0)], np.float32) / 255.0,
        "details": np.array([s.detail for s in scene.surfaces] + [0.0], np.float32) * np.float32(2 / 255),
    }
    sky = view.surface < 0
    sky_rows = np.flatnonzero(sky.any(axis=1))
    sky_image = common.sky.rows(int(sky_rows[-1]) + 1) if len(sky_rows) else None
    bands = _below_the_sky(sky)
    if bands is None:
        whole = (slice(None), slice(None))
        color = _shade_window(view, whole, scene, atlas, common, tables, common.scratch.part("shade/"))
        if sky_image is not None:
            rows = slice(0, len(sky_image))
            cv2.copyTo(sky_image, sky[rows].view(np.uint8), color[rows])
        return color
    color = np.empty(sky.shape + (3,), np.float32)
    for top, columns in bands:
        color[:top, columns] = sky_image[:top, columns]
        if top == len(sky):
            continue
        window = (slice(top, None), columns)
        color[window] = _shade_window(view, window, scene, atlas, common, tables, Scratch())
        if len(sky_image) > top:  # sky between the surfaces further down the band
            below = (slice(top, len(sky_image)), columns)
            cv2.copyTo(sky_image[below], sky[below].view(np.uint8), color[below])
    return color


def _below_the_sky(sky: np.ndarray) -> list[tuple[int, slice]] | None:
    """Bands of columns with the number of rows at their top that show nothing but sky; None when those
    rows are too few (under SKY_WORTH_SKIPPING of the image) to pay for shading band by band."""
    height, width = sky.shape
    first = np.where(sky.all(axis=0), height, np.argmin(sky, axis=0))  # first row that is not sky
    bands: list[tuple[int, slice]] = []
    for start in range(0, width, SKY_BAND_PX):
        columns = slice(start, min(start + SKY_BAND_PX, width))
        top = int(first[columns].min())
        if bands and bands[-1][0] == top:  # one window for neighbours that start on the same row
            columns = slice(bands.pop()[1].start, columns.stop)
        bands.append((top, columns))
    skipped = sum(top * (columns.stop - columns.start) for top, columns in bands)
    return bands if skipped >= SKY_WORTH_SKIPPING * sky.size else None


def _shade_window(view: ViewBuffers, window: tuple[slice, slice], scene: Scene, atlas: TextureAtlas,
                  common: ViewCommon, tables: dict, work: Scratch) -> np.ndarray:
    """shade_view of the pixels in a window of the view (sky pixels included, their colour to be replaced), as
    a new array. Three-channel work goes through OpenCV (merge/cvtColor to build, multiply with per-channel
    scalars): numpy's broadcasting of HxW or (3,) over HxWx3, and its uint8 x float products, are several
    times slower."""
    surface = view.surface[window]
    depth = view.depth[window]
    shape = surface.shape
    small = len(scene.surfaces) < 255  # uint8 indices: -1 -> 255, the sky
    index = work("index", shape, np.uint8) if small else surface
    if small:
        np.copyto(index, surface, casting="unsafe")  # = surface.astype(np.uint8)
    sky = np.less(surface, 0, out=work("sky", shape, bool))
    scale = lookup(tables["scales"], index, work("scale", shape))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = np.multiply(view.u[window], scale, out=work("u", shape))  # (sky: inf or nan, zeroed below)
        v = np.multiply(view.v[window], scale, out=work("v", shape))
        # texels under one pixel, grown at grazing incidence (half the anisotropy: sharp yet stable)
        footprint = np.multiply(depth, scale, out=work("lod", shape))
        footprint *= common.pixel_footprint[window]
        incidence = np.multiply(view.cosine[window], common.inverse_length[window],
                                out=work("incidence", shape))
        cv2.max(incidence, 0.05, dst=incidence)  # (OpenCV's max and min: twice numpy's speed)
        footprint *= footprint
        footprint /= incidence
        cv2.min(footprint, 1e12, dst=footprint)
        lod = cv2.log(footprint, dst=footprint)
        lod *= np.float32(0.5 / np.log(2.0))
    # only the sky's are not finite, and the sky's colour is replaced: zeroed to keep them harmless
    for array in (u, v, lod):
        np.copyto(array, np.float32(0.0), where=sky)
    texture = atlas.sample(index, u, v, lod, scratch=work.part("colour/"), tile_table=tables["tiles"])
    # the fine grain (the atlas's fourth channel) modulates the light: 1 + detail * (grain - 127.5)
    grain = cv2.extractChannel(texture, 3, dst=work("grain", shape, np.uint8))
    light = cv2.subtract(grain, 127.5, dtype=cv2.CV_32F, dst=work("light", shape))
    light *= lookup(tables["details"], index, work("detail", shape))
    light += 1.0
    light *= view.light[window]
    texture = cv2.cvtColor(texture, cv2.COLOR_RGBA2RGB, dst=work("texture", shape + (3,), np.uint8))
    # distance haze: a fraction `clear` of the surface's light arrives, the rest is the horizon's colour
    clear = np.multiply(depth, np.float32(-1.0 / scene.haze_m), out=work("clear", shape))
    cv2.exp(clear, dst=clear)  # (five times numpy's speed)
    channels = [lookup(tables["tints"][:, channel], index, work(f"tint{channel}", shape))
                for channel in range(3)]
    for channel in channels:
        channel *= light
    factor = cv2.merge(channels, dst=work("factor", shape + (3,)))
    height, width = view.surface.shape
    horizon = _uniform_image(height, width, tuple(float(c) for c in scene.sky_horizon))[:shape[0], :shape[1]]
    lit = cv2.multiply(texture, factor, dtype=cv2.CV_32F, dst=work("lit", shape + (3,)))
    return cv2.blendLinear(lit, horizon, clear, np.subtract(1.0, clear, out=work("haze", shape)))


@functools.lru_cache(maxsize=4)
def _uniform_image(height: int, width: int, color: tuple[float, float, float]) -> np.ndarray:
    """A read-only HxWx3 float32 image of one colour (the haze's, blended per pixel): one per drive and
    image size, of which windows take their corner."""
    image = cv2.repeat(np.array(color, np.float32).reshape(1, 1, 3), height, width)  # 30x numpy fill
    image.setflags(write=False)
    return image
