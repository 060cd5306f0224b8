"""The scene builders of the training families (families.py renders them): flying solids, indoor halls,
thin structures.

Each `build_<family>(rng, rig)` returns a PrimitiveScene for the rig's camera; all randomness comes from rng.
"""

from __future__ import annotations

import math

import numpy as np

from dla_perception.synthetic.family_kit import (
    Rig,
    floor_shape,
    free_of_rig,
    random_lights,
    random_material,
)
from dla_perception.synthetic.primitives import (
    Material,
    PrimitiveScene,
    Shape,
    random_rotation,
    rotation_matrix,
)

_LOW = ("flat", "gradient", "spectral")
_REPEATING = ("tiles", "grating", "checker", "weave", "dots")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


class _Builder:
    def __init__(self, rng: np.random.Generator, rig: Rig) -> None:
        self.rng, self.rig = rng, rig
        self.shapes: list[Shape] = []
        self.materials: list[Material] = []

    def material(self, **kwargs) -> int:
        self.materials.append(random_material(self.rng, **kwargs))
        return len(self.materials) - 1

    def add(self, kind: str, centre, rotation, size, material: int, check: bool = True) -> None:
        shape = Shape(kind, np.asarray(centre, float), rotation, tuple(float(s) for s in size), material)
        if not check or free_of_rig(shape, self.rig):
            self.shapes.append(shape)

    def seen_point(self, depth: float, margin: float = 0.15) -> np.ndarray:
        """A world point the left camera sees (give or take `margin` of the image) at `depth`."""
        c = self.rig.camera
        u = self.rng.uniform(-margin, 1 + margin) * c.width
        v = self.rng.uniform(-margin, 1 + margin) * c.height
        return self.rig.point(u, v, depth)

    def metres_across(self, fraction: float, depth: float) -> float:
        """How many metres `fraction` of the image width spans at `depth`."""
        return fraction * depth * self.rig.camera.width / self.rig.camera.fx

    def far_wall(self, distance: float, turn: float = 0.8) -> None:
        """An unbounded plane `distance` ahead along the view, its normal turned up to `turn` radians."""
        forward = self.rig.rotation[:, 2]
        yaw = math.atan2(forward[0], forward[2]) + self.rng.uniform(-turn, turn)
        pitch = math.asin(np.clip(forward[1], -1, 1)) + self.rng.uniform(-turn / 2, turn / 2)
        rotation = rotation_matrix(yaw, pitch, self.rng.uniform(0, 2 * math.pi))
        centre = self.rig.middle + distance * forward
        self.add("quad", centre, rotation, (math.inf, math.inf, 0), self.material(tile_m=(0.3, 30.0)), False)

    def scene(self, outdoor: bool) -> PrimitiveScene:
        lights = random_lights(self.rng, self.rig, outdoor, len(self.shapes))
        return PrimitiveScene(self.shapes, self.materials, lights)


def build_flying(rng: np.random.Generator, rig: Rig) -> PrimitiveScene:
    b = _Builder(rng, rig)
    background = rng.random()
    if background < 0.55:
        b.far_wall(_log_uniform(rng, 4.0, 80.0))
    elif background < 0.8:
        _room(b, *(rng.uniform(2.0, 25.0, 3)))
    if rng.random() < 0.5:
        b.add("quad", *_floor(), b.material(tile_m=(0.1, 10.0)), check=False)
    for _ in range(int(rng.integers(6, 40))):
        depth = _log_uniform(rng, 0.25, 25.0)
        centre = b.seen_point(depth)
        size = b.metres_across(_log_uniform(rng, 0.03, 0.5), depth)
        kind = rng.choice(["box", "sphere", "cylinder", "rod", "quad"], p=[0.3, 0.15, 0.15, 0.1, 0.3])
        rotation = random_rotation(rng)
        material = b.material()
        if kind == "box":
            b.add("box", centre, rotation, size * rng.uniform(0.1, 0.6, 3), material)
        elif kind == "sphere":
            b.add("sphere", centre, rotation, (size * rng.uniform(0.2, 0.5), 0, 0), material)
        elif kind == "cylinder":
            b.add(
                "cylinder",
                centre,
                rotation,
                (size * rng.uniform(0.1, 0.4), size * rng.uniform(0.2, 0.8), 0),
                material,
            )
        elif kind == "rod":
            b.add(
                "cylinder",
                centre,
                rotation,
                (size * rng.uniform(0.005, 0.04), size * rng.uniform(0.5, 2), 0),
                material,
            )
        else:
            b.add(
                "quad",
                centre,
                rotation,
                (size * rng.uniform(0.1, 0.7), size * rng.uniform(0.1, 0.7), 0),
                material,
            )
    return b.scene(outdoor=True)


def _floor() -> tuple:
    shape = floor_shape(0)
    return shape.centre, shape.rotation, shape.size


def _room(b: _Builder, half_x: float, half_y: float, half_z: float, floor_at_zero: bool = False) -> None:
    """Six inward-facing walls around the rig (the floor at y = 0 when floor_at_zero)."""
    centre = b.rig.middle.copy()
    if floor_at_zero:
        centre[1] = -half_y
    for axis in range(3):
        for sign in (-1.0, 1.0):
            half = (half_x, half_y, half_z)[axis]
            position = centre.copy()
            position[axis] += sign * half
            # a quad's normal is its local +z: turn it to point back along -sign * axis
            normal = np.zeros(3)
            normal[axis] = -sign
            rotation = _frame_with_normal(normal)
            b.add("quad", position, rotation, (math.inf, math.inf, 0), b.material(tile_m=(0.2, 12.0)), False)


def _frame_with_normal(normal: np.ndarray) -> np.ndarray:
    """A rotation whose third column is `normal` (unit)."""
    helper = np.array([0.0, 1.0, 0.0]) if abs(normal[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, normal)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(normal, x), normal], axis=1)


def build_indoor(rng: np.random.Generator, rig: Rig) -> PrimitiveScene:
    """A corridor or hall along the rig's heading: walls of paint or tiles, doors, pillars, furniture,
    lamps that glow on the ceiling over a floor that may shine."""
    b = _Builder(rng, rig)
    width, ceiling, length = rng.uniform(1.4, 8.0), rng.uniform(2.2, 4.5), rng.uniform(5.0, 60.0)
    heading = rig.yaw + rng.uniform(-0.6, 0.6)
    turn = rotation_matrix(heading)
    offset = rng.uniform(-0.4, 0.4) * width
    origin = rig.middle * np.array([1.0, 0.0, 1.0]) - turn @ np.array([offset, 0.0, 1.0])

    def world(x, y, z):
        return origin + turn @ np.array([x, y, z])

    def wall_material():
        family = rng.choice(3, p=[0.5, 0.3, 0.2])
        kinds = (_LOW, _REPEATING, None)[family]
        return b.material(kinds=kinds, tile_m=(0.2, 4.0), gloss=0.15)

    floor_mat = b.material(
        kinds=("tiles", "checker", "flat", "spectral", "dead_leaves", "grating", "cells"),
        tile_m=(0.2, 6.0),
        gloss=0.6,
    )
    b.add("quad", *_floor()[:2], (math.inf, math.inf, 0), floor_mat, check=False)
    ceiling_rot = turn @ rotation_matrix(pitch=math.pi / 2)  # normal down (+y)
    b.add("quad", world(0, -ceiling, 0), ceiling_rot, (math.inf, math.inf, 0), wall_material(), False)
    for side in (-1.0, 1.0):
        rotation = turn @ rotation_matrix(yaw=-side * math.pi / 2)  # normal towards the corridor's middle
        b.add(
            "quad", world(side * width / 2, 0, 0), rotation, (math.inf, math.inf, 0), wall_material(), False
        )
        z = rng.uniform(0.0, 4.0)
        door = b.material(tile_m=(0.3, 3.0))
        while z < length:
            inset = side * (width / 2 - 0.02)
            if rng.random() < 0.6:
                b.add("quad", world(inset, -1.05, z), rotation, (0.45, 1.05, 0), door)
            elif rng.random() < 0.5:
                b.add(
                    "box",
                    world(side * (width / 2 - 0.2), -ceiling / 2, z),
                    turn,
                    (0.2, ceiling / 2, 0.2),
                    door,
                )
            z += rng.uniform(1.5, 6.0)
    if rng.random() < 0.75:
        b.add(
            "quad",
            world(0, 0, length),
            turn @ rotation_matrix(yaw=math.pi),
            (math.inf, math.inf, 0),
            wall_material(),
            False,
        )
    b.add("quad", world(0, 0, -1.5), turn, (math.inf, math.inf, 0), wall_material(), False)
    for _ in range(int(rng.integers(2, 14))):
        x, z = rng.uniform(-0.45, 0.45) * width, rng.uniform(0.4, min(length, 25.0))
        material = b.material(gloss=0.3)
        if rng.random() < 0.6:
            half = (rng.uniform(0.1, 0.8), rng.uniform(0.05, 0.7), rng.uniform(0.1, 0.6))
            b.add(
                "box", world(x, -half[1], z), turn @ rotation_matrix(rng.uniform(-0.5, 0.5)), half, material
            )
        else:
            radius, half_h = rng.uniform(0.05, 0.4), rng.uniform(0.1, 0.6)
            b.add("cylinder", world(x, -half_h, z), turn, (radius, half_h, 0), material)
    z = rng.uniform(0.5, 3.0)
    down = turn @ rotation_matrix(pitch=math.pi / 2)
    lamps = []
    while z < length:
        lamp = b.material(kinds=("flat",), glow=rng.uniform(2.0, 8.0))
        b.add(
            "quad",
            world(0, -ceiling + 0.01, z),
            down,
            (rng.uniform(0.1, 0.6), rng.uniform(0.1, 1.2), 0),
            lamp,
            check=False,
        )
        lamps.append(world(0, -ceiling + 0.2, z))
        z += rng.uniform(2.0, 6.0)
    scene = b.scene(outdoor=False)
    power = rng.uniform(0.5, 4.0)
    scene.lights.lamps.extend((p, (power, power * 0.95, power * 0.9)) for p in lamps[:6])
    return scene


def build_thin(rng: np.random.Generator, rig: Rig) -> PrimitiveScene:
    """Fences, railings, poles, wires, meshes, tables and trees before a far wall or an empty sky."""
    b = _Builder(rng, rig)
    if rng.random() < 0.6:
        b.far_wall(_log_uniform(rng, 5.0, 60.0), turn=0.5)
    if rng.random() < 0.7:
        b.add("quad", *_floor(), b.material(tile_m=(0.1, 6.0)), check=False)
    for _ in range(int(rng.integers(3, 9))):
        depth = _log_uniform(rng, 0.5, 12.0)
        base = b.seen_point(depth, margin=0.05)
        base[1] = 0.0  # stand on the floor
        yaw = rng.uniform(0, 2 * math.pi)
        turn = rotation_matrix(yaw)
        kind = rng.choice(["fence", "pole", "wires", "mesh", "table", "tree"])
        material = b.material(gloss=0.3)
        if kind == "fence":
            height, length, spacing = rng.uniform(0.4, 2.0), rng.uniform(1.0, 6.0), rng.uniform(0.06, 0.5)
            post = rng.uniform(0.005, 0.04)
            for x in np.arange(-length / 2, length / 2, spacing):
                b.add(
                    "box" if rng.random() < 0.5 else "cylinder",
                    base + turn @ [x, -height / 2, 0],
                    turn,
                    (post, height / 2, post),
                    material,
                )
            for y in rng.uniform(0.1, 1.0, int(rng.integers(1, 4))) * height:
                b.add("box", base + turn @ [0, -y, 0], turn, (length / 2, post, post), material)
        elif kind == "pole":
            radius, height = rng.uniform(0.008, 0.1), rng.uniform(0.5, 4.0)
            b.add("cylinder", base + [0, -height / 2, 0], np.eye(3), (radius, height / 2, 0), material)
        elif kind == "wires":
            for _ in range(int(rng.integers(1, 6))):
                tilt = rotation_matrix(yaw, 0, math.pi / 2 + rng.uniform(-0.3, 0.3))
                b.add(
                    "cylinder",
                    base + [0, -rng.uniform(0.3, 3.0), 0],
                    tilt,
                    (rng.uniform(0.002, 0.012), rng.uniform(1.0, 8.0), 0),
                    material,
                )
        elif kind == "mesh":
            size, bars, radius = rng.uniform(0.5, 3.0), int(rng.integers(4, 16)), rng.uniform(0.003, 0.02)
            lift = rng.uniform(0.0, 1.0)
            for position in np.linspace(-size / 2, size / 2, bars):
                b.add(
                    "box",
                    base + turn @ [position, -lift - size / 2, 0],
                    turn,
                    (radius, size / 2, radius),
                    material,
                )
                b.add(
                    "box",
                    base + turn @ [0, -lift - size / 2 + position, 0],
                    turn,
                    (size / 2, radius, radius),
                    material,
                )
        elif kind == "table":
            w, d, h, leg = (
                rng.uniform(0.3, 1.0),
                rng.uniform(0.3, 0.8),
                rng.uniform(0.4, 1.1),
                rng.uniform(0.01, 0.04),
            )
            b.add("box", base + turn @ [0, -h, 0], turn, (w, rng.uniform(0.01, 0.04), d), material)
            for sx in (-1, 1):
                for sz in (-1, 1):
                    b.add(
                        "cylinder",
                        base + turn @ [sx * (w - leg), -h / 2, sz * (d - leg)],
                        turn,
                        (leg, h / 2, 0),
                        material,
                    )
        else:
            _tree(b, base, material)
    return b.scene(outdoor=True)


def _tree(b: _Builder, base: np.ndarray, material: int) -> None:
    rng = b.rng
    height, radius = rng.uniform(1.0, 5.0), rng.uniform(0.03, 0.2)
    b.add("cylinder", base + [0, -height / 2, 0], np.eye(3), (radius, height / 2, 0), material)
    leaves = b.material(kinds=("dead_leaves", "spectral", "cells", "dots"), tile_m=(0.1, 1.0))
    for _ in range(int(rng.integers(4, 16))):
        rotation = random_rotation(rng)
        length = rng.uniform(0.2, 1.2) * height / 2
        start = base + [0, -height * rng.uniform(0.4, 1.0), 0]
        b.add(
            "cylinder",
            start + rotation[:, 1] * length,
            rotation,
            (radius * rng.uniform(0.1, 0.5), length, 0),
            material,
        )
        for _ in range(int(rng.integers(0, 4))):
            b.add(
                "sphere",
                start + rotation[:, 1] * length * rng.uniform(1.0, 2.0),
                np.eye(3),
                (rng.uniform(0.05, 0.4) * length, 0, 0),
                leaves,
            )
