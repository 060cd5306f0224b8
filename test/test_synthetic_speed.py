"""The generator's speed measures must not change what it makes: reused work arrays, the one-level texture
read, tile lookups by surface, and the allocator setting that keeps freed memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dla_perception.synthetic.arrays import Scratch, lookup
from dla_perception.synthetic.camera import StereoCamera
from dla_perception.synthetic.scene import generate_sequence
from dla_perception.synthetic.texture_atlas import TextureAtlas, tile_mips
from dla_perception.synthetic.textures import TILE_KINDS

SMALL = StereoCamera().scaled(160, 120)
REPO = Path(__file__).resolve().parents[1]


def _atlas() -> TextureAtlas:
    return TextureAtlas.of([tile_mips(kind, 0, 64) for kind in TILE_KINDS[:5]])


def _reference_nearest_mip(atlas: TextureAtlas, tile: np.ndarray, u, v, lod) -> np.ndarray:
    """The plain way: per pixel the level nearest to lod (within the pyramid), read bilinearly there."""
    level = np.clip(np.floor(lod + np.float32(0.5)), 0, atlas.levels - 1).astype(np.uint8)
    size = np.float32(atlas.tile_size)
    u = u - np.floor(u * (1 / size)) * size
    v = v - np.floor(v * (1 / size)) * size
    scale = lookup(atlas._level_scale, level)
    map_x = u * scale + (lookup(atlas._level_x, level) + lookup(atlas._tile_x, tile))
    map_y = v * scale + lookup(atlas._tile_y, tile)
    return cv2.remap(atlas.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_texture_samples_are_the_plain_nearest_mip_ones_whatever_the_shortcuts():
    rng = np.random.default_rng(5)
    atlas = _atlas()
    shape = (48, 64)
    u = rng.uniform(-300, 300, shape).astype(np.float32)
    v = rng.uniform(-300, 300, shape).astype(np.float32)
    # magnified texture (lod < 0: level 0), every level, and beyond the smallest one
    lod = rng.uniform(-3.0, atlas.levels + 1.0, shape).astype(np.float32)
    surface = rng.integers(0, 4, shape).astype(np.uint8)
    tile_of_surface = np.array([3, 0, 4, 1])
    expected = _reference_nearest_mip(atlas, tile_of_surface[surface].astype(np.uint8), u, v, lod)

    plain = atlas.sample(tile_of_surface[surface], u, v, lod)
    by_surface = atlas.sample(surface, u, v, lod, tile_table=tile_of_surface)
    scratch = Scratch()
    first = atlas.sample(surface, u, v, lod, scratch=scratch, tile_table=tile_of_surface).copy()
    again = atlas.sample(surface, u, v, lod, scratch=scratch, tile_table=tile_of_surface)
    for result in (plain, by_surface, first, again):
        assert result.dtype == np.uint8 and result.shape == shape + (4,)
        assert result.tobytes() == expected.tobytes()
    assert (expected[:20] != expected[20:40]).any(), "the texture varies: the comparison means something"


def test_a_pixel_reads_the_mip_level_nearest_to_its_lod():
    """A tile whose level L is flat grey 40 * (L + 1): the value read tells the level."""
    shapes = [level.shape for level in tile_mips("bricks", 0, 64)]
    flat_levels = tuple(np.full(shape, 40 * (level + 1), np.uint8) for level, shape in enumerate(shapes))
    atlas = TextureAtlas.of([flat_levels])
    lods = np.array([[-3.0, 0.0, 0.49, 0.51, 1.0, 1.49, 1.51, 2.6, len(shapes) - 1.0, len(shapes) + 5.0]],
                    np.float32)
    u = np.array([[0.3, 17.0, -5.5, 63.9, 2.0, 40.0, 100.0, -70.0, 8.0, 31.0]], np.float32)
    levels = atlas.sample(None, u, u[:, ::-1].copy(), lods)[0, :, 0] // 40 - 1
    assert levels.tolist() == [0, 0, 0, 1, 1, 1, 2, 3, len(shapes) - 1, len(shapes) - 1]


def test_scratch_arrays_are_reused_by_name_shape_and_type_and_parts_do_not_clash():
    scratch = Scratch()
    a = scratch("map", (4, 5))
    assert scratch("map", (4, 5)) is a
    assert scratch("map", (4, 6)) is not a
    assert scratch("map", (4, 5), np.uint8) is not a
    part = scratch.part("colour/")
    assert part("map", (4, 5)) is not a and part("map", (4, 5)) is part("map", (4, 5))


def test_interleaved_drives_give_the_same_bytes_as_separate_ones():
    """Each drive has its own work arrays: two generators advanced in turn must not disturb each other."""
    options = dict(photometric=True)
    alone = [list(generate_sequence(seed, 3, SMALL, **options)) for seed in (4, 9)]
    first, second = generate_sequence(4, 3, SMALL, **options), generate_sequence(9, 3, SMALL, **options)
    interleaved = [[], []]
    for _ in range(3):
        interleaved[0].append(next(first))
        interleaved[1].append(next(second))
    for drive, again in zip(alone, interleaved, strict=True):
        for a, b in zip(drive, again, strict=True):
            for name in ("left", "right", "disparity", "depth_m"):
                assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
            assert a.objects == b.objects


_BURSTS = """
import resource, sys
import numpy as np
from dla_perception.synthetic.memory import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    print("unsupported")
    raise SystemExit
def burst():  # what a frame does: many MB-sized temporaries, all freed at the end
    blocks = [np.ones(3 << 19, np.uint8) for _ in range(16)]
    del blocks
burst()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    burst()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> str:
    result = subprocess.run([sys.executable, "-c", _BURSTS, mode], capture_output=True, text=True, check=True,
                            cwd=REPO)
    return result.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_stays_in_the_process_instead_of_page_faulting_back():
    kept = _page_faults("keep")
    if kept == "unsupported":
        pytest.skip("this C library does not take the setting")
    default = int(_page_faults("default"))
    print(f"page faults for 10 bursts of 16 x 1.5 MB: {default} by default, {kept} with the setting")
    assert int(kept) < 100
    assert default > 10 * max(int(kept), 100), "without the setting the bursts must fault (else: meaningless)"


def test_shading_below_the_open_sky_band_by_band_changes_nothing(monkeypatch):
    """A view with open sky may be shaded in bands of columns from their first non-sky row: same bytes."""
    import dla_perception.synthetic.shading as shading

    def drive(worth_skipping: float):
        monkeypatch.setattr(shading, "SKY_WORTH_SKIPPING", worth_skipping)
        return list(generate_sequence(7, 2, SMALL, photometric=False))

    banded, whole = drive(0.0), drive(2.0)  # always in bands / never
    sky = np.isinf(banded[0].depth_m)
    assert sky.mean() > 0.2 and (~sky).mean() > 0.3, "a view with much open sky and much else"
    for a, b in zip(banded, whole, strict=True):
        assert a.left.tobytes() == b.left.tobytes() and a.right.tobytes() == b.right.tobytes()


def test_the_atlas_fourth_channel_is_the_grain_repeated_at_every_level():
    """The grain rides in the alpha channel (one read for colour and grain): GRAIN_FREQUENCY periods per
    tile side at every mip level, centred on the middle grey; it varies within a period at full resolution
    (smaller levels average it away)."""
    from dla_perception.synthetic.texture_atlas import _PAD, GRAIN_FREQUENCY

    for level, image in enumerate(tile_mips("asphalt", 3, 64)):
        grain = image[_PAD:-_PAD, _PAD:-_PAD, 3].astype(np.int16)
        period = max((64 >> level) // GRAIN_FREQUENCY, 1)
        assert grain.shape == (64 >> level,) * 2
        for axis in (0, 1):
            assert (grain == np.roll(grain, period, axis=axis)).all()
        assert abs(grain.mean() - 127.5) < 6
        if level == 0:
            assert grain[:period, :period].std() > 3


def test_the_texture_pool_draws_each_variant_once_into_its_own_cell():
    """Scenes share one atlas per tile size: a variant keeps its cell, holds what tile_mips makes, and is
    never drawn twice (a second scene asking for it again reads the same cell)."""
    from concurrent.futures import ThreadPoolExecutor

    from dla_perception.synthetic.texture_atlas import TEXTURE_VARIANTS, TexturePool

    pool = TexturePool(32)
    requests = [("bricks", 2), ("paving", 0), ("bricks", 2), ("clouds", TEXTURE_VARIANTS - 1)] * 8
    with ThreadPoolExecutor(4) as threads:
        indices = list(threads.map(lambda request: pool.tile(*request), requests))
    assert indices[:4] * 8 == indices and len(set(indices[:4])) == 3
    expected = TextureAtlas.of([tile_mips("bricks", 2, 32), tile_mips("paving", 0, 32)])
    u, v = np.meshgrid(np.arange(-40, 40, 0.7, dtype=np.float32), np.arange(-40, 40, 0.9, dtype=np.float32))
    lod = np.full(u.shape, 0.8, np.float32)
    for mine, theirs in ((indices[0], 0), (indices[1], 1)):
        read = pool.atlas.sample(np.full(u.shape, mine), u, v, lod).astype(np.int16)
        # the same texels; the bilinear weights may round apart by one step at other atlas coordinates
        assert np.abs(read - expected.sample(np.full(u.shape, theirs), u, v, lod)).max() <= 1
    with pytest.raises(ValueError, match="no texture 'lava'"):
        pool.tile("lava", 0)
    with pytest.raises(ValueError, match="variant 16"):
        pool.tile("bricks", TEXTURE_VARIANTS)


def test_the_box_slab_test_finds_the_first_face_each_ray_meets():
    """Against the plain way, ray by ray: every face plane, the nearest crossing inside its square."""
    from dla_perception.synthetic.intersections import _hit_unit_box
    from dla_perception.synthetic.scene_model import NEAR_M

    rng = np.random.default_rng(3)
    for origin in ([0.2, -3.0, 2.5], [-2.0, 0.5, -0.3], [1.5, 1.5, 1.5], [0.0, 0.0, -4.0]):
        # towards points around the box, some straight along an axis
        directions = (rng.uniform(-1.6, 1.6, (3, 40, 50)) - np.reshape(origin, (3, 1, 1))).astype(np.float32)
        directions[rng.integers(0, 3), :, :3] = 0.0
        with np.errstate(divide="ignore"):  # as render_view calls it: rays along an axis divide by zero
            t, hits, _, *normal = _hit_unit_box(*origin, *directions)
        assert 50 < hits.sum() < hits.size, "some rays hit, some miss"
        for row, column in np.ndindex(hits.shape):
            ray = directions[:, row, column].astype(np.float64)
            best, best_normal = np.inf, None
            for axis in range(3):
                for side in (-1.0, 1.0):
                    crossing = (side - origin[axis]) / ray[axis] if ray[axis] else -1.0
                    point = np.asarray(origin) + crossing * ray
                    if NEAR_M <= crossing < best and (np.abs(np.delete(point, axis)) <= 1.0 + 1e-6).all():
                        best, best_normal = crossing, np.eye(3)[axis] * side
            assert np.isfinite(t[row, column]) == np.isfinite(best) == hits[row, column]
            if np.isfinite(best):
                assert t[row, column] == pytest.approx(best, rel=1e-5)
                assert [n[row, column] for n in normal] == best_normal.tolist()
