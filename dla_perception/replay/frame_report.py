"""One report picture per chosen frame: input, ground truth, the graph's level image, the alert mask.

Ground truth and prediction are drawn in the same level colours ("nearer than plane k"), with the legend
below the panels (never over the data), and each plane's near-pixel counts (truth / predicted) under it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dla_perception.replay.records import Overlay, overlay_image

BEYOND_COLOUR = (0.82, 0.82, 0.82)  # beyond every plane
UNKNOWN_COLOUR = (0.0, 0.0, 0.0)  # ground truth unknown (0 or NaN)


def level_colours(count: int) -> list[tuple[float, float, float]]:
    """One colour per plane, nearest first: red (nearest) through yellow to blue (farthest)."""
    from matplotlib import colormaps

    cmap = colormaps["turbo_r"]
    return [tuple(cmap(0.08 + 0.8 * k / max(1, count - 1))[:3]) for k in range(count)]


def level_indices(disparity: np.ndarray, planes_px: list[float], strict: bool) -> np.ndarray:
    """Per pixel the index of the nearest plane it is nearer than (planes ascending in metres), -1 beyond.

    strict: ground truth is near a plane when its disparity is larger (design.md); the graph's level image
    holds the plane disparities themselves, so it is near when it reaches one (float32 tolerance).
    """
    values = np.nan_to_num(np.asarray(disparity, dtype=np.float32))
    index = np.full(values.shape, -1, dtype=np.int32)
    for k in range(len(planes_px) - 1, -1, -1):  # farthest first, nearer planes overwrite
        plane = planes_px[k]
        near = values > plane if strict else values >= plane * (1.0 - 1e-5)
        index[near] = k
    return index


def _level_picture(index: np.ndarray, colours: list, unknown: np.ndarray | None) -> np.ndarray:
    picture = np.empty((*index.shape, 3), dtype=np.float32)
    picture[:] = BEYOND_COLOUR
    for k, colour in enumerate(colours):
        picture[index == k] = colour
    if unknown is not None:
        picture[unknown] = UNKNOWN_COLOUR
    return picture


def write_frame_figure(overlay: Overlay, path: Path) -> None:
    """The four panels of one frame as a PNG (fewer where the bag or the graph lacks a part)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    planes_m = [m for m, _ in overlay.planes]
    planes_px = [px for _, px in overlay.planes]
    colours = level_colours(len(planes_px))
    panels: list[tuple[str, np.ndarray]] = [("input (detections yellow)", _input_only(overlay))]
    if overlay.truth_px is not None and planes_px:
        unknown = ~np.isfinite(overlay.truth_px) | (overlay.truth_px <= 0)
        panels.append(("ground truth levels",
                       _level_picture(level_indices(overlay.truth_px, planes_px, True), colours, unknown)))
    if overlay.level_px is not None and planes_px:
        panels.append(("graph's levels (proximity/disparity)",
                       _level_picture(level_indices(overlay.level_px, planes_px, False), colours, None)))
    if overlay.alert_mask is not None:
        masks_only = Overlay(overlay.index, overlay.image_rgb, overlay.alert_mask, overlay.truth_mask)
        panels.append(("alert mask (red), truth outline (green)", overlay_image(masks_only)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for axis, (caption, picture) in zip(axes[0], panels, strict=True):
        axis.imshow(picture, interpolation="nearest")
        axis.set_title(caption, fontsize="small")
        axis.set_axis_off()
    handles = []
    for k, (metres, colour) in enumerate(zip(planes_m, colours, strict=True)):
        label = f"nearer than {metres:g} m"
        if overlay.counts and k < len(overlay.counts):
            truth, predicted = overlay.counts[k]
            label += f" (near px truth {truth}, predicted {predicted})"
        handles.append(Patch(color=colour, label=label))
    if handles:
        handles.append(Patch(color=BEYOND_COLOUR, label="beyond every plane"))
        if overlay.truth_px is not None:
            handles.append(Patch(color=UNKNOWN_COLOUR, label="ground truth unknown"))
        fig.legend(handles=handles, loc="lower center", ncol=min(3, len(handles)), fontsize="small",
                   frameon=False)
    fig.suptitle(overlay.title or f"Frame {overlay.index}", fontsize="medium")
    rows = (len(handles) + 2) // 3
    fig.tight_layout(rect=(0, 0.06 * rows + 0.02 if handles else 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _input_only(overlay: Overlay) -> np.ndarray:
    """The input image with the detection boxes only (masks have their own panel)."""
    plain = Overlay(overlay.index, overlay.image_rgb, detections=overlay.detections)
    return overlay_image(plain)
