"""Is the configured camera mount the one the network sees? A check of the floor ahead, without ROS.

With ground handling on, a wrong height or pitch either turns the floor into an obstacle (robot stops) or
hides low obstacles in the floor. The check asks the plane head about two more floor surfaces per frame:
the floor as a camera `tolerance_m` higher would see it (farther) and as one `tolerance_m` lower would
(nearer). In the rows where the configured floor is at most `max_distance_m` ahead, each pixel is then

- *beyond*: farther than the far floor: nothing solid is under the floor, so the floor is farther than
  the mount says (camera higher, or pitched up, compared with the configuration);
- *floor*: between the two: the floor where the mount puts it, within the tolerance;
- *above*: nearer than the near floor: an obstacle, or the floor is nearer than the mount says.

A correct mount gives mostly floor pixels; obstacles ahead only lower that share for a while. The monitor
takes the median of each share over the last frames and warns when the floor share falls below a
threshold, naming the likelier direction from beyond vs above. Measured on 4 synthetic drives (true mount
0.5 m, 5 deg down, tolerance 0.1 m, 10 frames each; median floor share): correct mount 0.90-1.00; height
set 0.15 m too low or too high 0.00-0.06; pitch 5 deg off 0.38-0.48; pitch 3 deg off 0.71-0.89.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from dla_perception.models.proximity_geometry import GroundModel, StereoGeometry

WINDOW_FRAMES = 15  # the median is over this many recent frames
MIN_FRAMES = 5  # fewer than this: no verdict yet
MIN_FLOOR_SHARE = 0.6


@dataclass(frozen=True)
class FloorEvidence:
    """Shares of the checked pixels of one frame (they add up to 1)."""

    beyond: float
    floor: float
    above: float
    pixels: int


@dataclass(frozen=True)
class MountCheck:
    """The two extra floor surfaces of a mount and how to read the answers."""

    mount: GroundModel
    tolerance_m: float
    max_distance_m: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tolerance_m) and self.tolerance_m > 0):
            raise ValueError(f"tolerance_m must be positive, got {self.tolerance_m}")

    def floors(self) -> tuple[GroundModel, GroundModel]:
        """(far floor, near floor): the bare floor (no clearance) seen from cameras higher and lower."""
        height, pitch = self.mount.camera_height_m, self.mount.pitch_rad
        lower = max(height - self.tolerance_m, 0.5 * height)
        return GroundModel(height + self.tolerance_m, pitch, 0.0), GroundModel(lower, pitch, 0.0)

    def checked_rows(self, geometry: StereoGeometry, height: int) -> np.ndarray:
        """Bool per image row: below the horizon with the configured floor at most max_distance_m ahead."""
        rows = np.arange(height, dtype=np.float64)
        pitch = self.mount.pitch_rad
        down = (rows - geometry.cy) / geometry.fy * math.cos(pitch) + math.sin(pitch)
        return down * self.max_distance_m >= self.mount.camera_height_m

    def evidence(self, floor_masks: np.ndarray, geometry: StereoGeometry) -> FloorEvidence | None:
        """The shares of one frame from `ProximityResult.floor_masks` (far, near); None when no floor row
        is in view (camera looking up)."""
        far, near = floor_masks[0], floor_masks[1]
        rows = self.checked_rows(geometry, far.shape[0])
        if not rows.any():
            return None
        nearer_than_far, nearer_than_near = far[rows], near[rows]
        pixels = nearer_than_far.size
        beyond = float(np.count_nonzero(~nearer_than_far)) / pixels
        above = float(np.count_nonzero(nearer_than_near)) / pixels
        return FloorEvidence(beyond, max(0.0, 1.0 - beyond - above), above, pixels)


class MountMonitor:
    """Recent frames' evidence -> (ok, message); the node turns it into a diagnostics condition."""

    def __init__(self, window: int = WINDOW_FRAMES, min_floor_share: float = MIN_FLOOR_SHARE) -> None:
        self._recent: deque[FloorEvidence] = deque(maxlen=window)
        self.min_floor_share = min_floor_share

    def add(self, evidence: FloorEvidence | None) -> None:
        if evidence is not None:
            self._recent.append(evidence)

    def reset(self) -> None:
        self._recent.clear()

    def medians(self) -> FloorEvidence | None:
        if len(self._recent) < MIN_FRAMES:
            return None
        shares = np.array([(e.beyond, e.floor, e.above) for e in self._recent])
        beyond, floor, above = (float(v) for v in np.median(shares, axis=0))
        return FloorEvidence(beyond, floor, above, int(np.median([e.pixels for e in self._recent])))

    def verdict(self) -> tuple[bool, str]:
        """(True, "") while the floor is where the mount says, or too few frames were checked yet.

        The message stays the same while the problem does (the shares are in `medians()`), so a node logs it
        once, not on every frame.
        """
        medians = self.medians()
        if medians is None or medians.floor >= self.min_floor_share:
            return True, ""
        share = (f"less than {self.min_floor_share:.0%} of the floor ahead is where the camera mount puts it "
                 f"(median over the last {self._recent.maxlen} checked frames)")
        if medians.beyond >= medians.above:
            return False, (f"{share}: the floor is farther than configured; is the camera higher, or pitched "
                           "less down, than camera_height_m/camera_pitch_deg say?")
        return False, (f"{share}: the floor is nearer than configured; is the camera lower, or pitched more "
                       "down, than camera_height_m/camera_pitch_deg say (or is the view ahead blocked)?")
