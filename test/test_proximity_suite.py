"""The evaluation suite of the proximity network on a few frames, on the CPU: the held-out family with its
transformed pairs and SGBM beside the models, the street renderer's held-out seeds, Middlebury, and the
arithmetic report. The full figures come from `python -m training.proximity.suite` (MODEL_CARD.md)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from training.proximity import flops
from training.proximity.suite import SGBM, Scores, evaluate_heldout, evaluate_middlebury_suite

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models" / "proximity"
STEREO = Path(os.environ.get("DLA_PERCEPTION_SHARED_DATA", REPO.parent / "shared" / "data")) / "stereo"


def test_scores_pool_counts_over_frames():
    scores = Scores(1)
    truth = np.array([True, True, False, False])
    scores.add(0, np.array([True, False, True, False]), truth, np.ones(4, bool))
    scores.add(0, np.array([True, True, False, False]), truth, np.array([True, True, False, True]))
    assert scores.summary() == {"iou": [0.6], "precision": [0.75], "recall": [0.75]}
    assert math.isnan(Scores(1).summary()["iou"][0])


def test_heldout_family_with_transforms_and_sgbm_on_two_frames():
    result = evaluate_heldout([MODELS, MODELS / "v1"], 2, workers=1, threads=1)
    assert result["planes_m"] == [1.0, 1.5, 2.5, 4.0] and result["frames"] == 2
    assert set(result["results"]) == {str(MODELS), str(MODELS / "v1"), SGBM}
    for entry in result["results"].values():
        for transform in ("plain", "upside_down", "mirrored"):
            for key in ("iou", "precision", "recall"):
                assert len(entry[transform][key]) == 4
                assert all(0.0 <= v <= 1.0 for v in entry[transform][key] if not math.isnan(v))
        drops = entry["consistency"]["upside_down_iou_drop"]
        assert drops == [round(p - q, 4) for p, q in zip(entry["plain"]["iou"], entry["upside_down"]["iou"],
                                                         strict=True)]
    new = result["results"][str(MODELS)]
    assert min(new["plain"]["iou"]) > 0.7  # 0.93-0.95 on 200 frames (MODEL_CARD.md)
    assert min(new["consistency"]["upside_down_agreement_iou"]) > 0.8


def test_image_edge_scores_the_band_no_match_can_be_found_for():
    from training.proximity.suite import _sample

    plain, edge = _sample(("heldout", 3, False)), _sample(("heldout", 3, True))
    assert np.array_equal(plain.left, edge.left) and np.array_equal(plain.right, edge.right)
    band = (edge.disparity > 0) & (plain.disparity == 0)
    columns = np.broadcast_to(np.arange(edge.camera.width), band.shape)
    assert band.any() and np.all(columns[band] < edge.disparity[band])  # the left edge only
    street_plain, street_edge = _sample(("street", 1_000_000, False)), _sample(("street", 1_000_000, True))
    assert np.count_nonzero(street_edge.disparity) > np.count_nonzero(street_plain.disparity)
    result = evaluate_heldout([MODELS], 1, seed_base=3, workers=1, threads=1, image_edge=True)
    assert result["image_edge_counted"] is True
    # SGBM answers nothing where there is no match: counting the band can only add misses for it
    counted = evaluate_heldout([MODELS], 1, seed_base=3, workers=1, threads=1)
    assert max(result["results"][SGBM]["plain"]["recall"]) < max(counted["results"][SGBM]["plain"]["recall"])


def test_command_line_planes_and_json(tmp_path, monkeypatch):
    import json

    from training.proximity import suite

    out = tmp_path / "suite.json"
    monkeypatch.setattr("sys.argv", ["suite", "--models", str(MODELS), "--frames", "1", "--workers", "1",
                                     "--threads", "1", "--planes", "3", "1", "--json", str(out)])
    suite.main()
    result = json.loads(out.read_text())["heldout"]
    assert result["planes_m"] == [1.0, 3.0] and result["image_edge_counted"] is False
    assert len(result["results"][str(MODELS)]["plain"]["iou"]) == 2


def test_street_seeds_have_no_mirrored_case():
    result = evaluate_heldout([MODELS], 1, workers=1, threads=1, planes_m=(1.0, 2.0), source="street")
    assert result["seeds"] == [1_000_000, 1_000_000]
    assert set(result["results"][SGBM]) == {"plain", "upside_down", "consistency", "ms_per_pair_median"}
    with pytest.raises(ValueError, match="source"):
        evaluate_heldout([MODELS], 1, source="middlebury")


@pytest.mark.skipif(not (STEREO / "scenes.json").is_file(), reason=f"no Middlebury data at {STEREO}")
def test_middlebury_two_scenes_plain_and_upside_down():
    result = evaluate_middlebury_suite([MODELS], STEREO, threads=1, scenes_only={"tsukuba", "cones"})
    assert set(result["scenes"]) == {"tsukuba", "cones"}
    for scene in result["scenes"].values():
        for name in (str(MODELS), SGBM):
            assert len(scene[name]["plain"]) == len(scene[name]["upside_down"]) == 3
    means = result["means"][str(MODELS)]
    assert 0.5 < means["iou_mean"] <= 1.0 and len(means["iou_mean_per_fraction"]) == 3


def test_arithmetic_report_counts_per_plane_and_per_frame():
    new, old = flops.report(MODELS, planes=5), flops.report(MODELS / "v1", planes=5)
    assert (new["head"]["batch"], old["head"]["batch"]) == (1, 4)
    assert (new["head_calls"], old["head_calls"]) == (5, 2)  # one plane a call; v1: two calls of 4 slots
    assert new["flops_per_frame"] == new["features"]["flops"] + 5 * new["head"]["flops"]
    assert new["head_flops_per_plane"] == new["head"]["flops"]
    assert old["flops_per_frame"] == old["features"]["flops"] + 2 * old["head"]["flops"]
    # v1: 416 MFLOPs per plane, 1.02 GFLOPs features (counted by hand from its layers in MODEL_CARD.md)
    assert 4.0e8 < old["head_flops_per_plane"] < 4.3e8 and 1.0e9 < old["features"]["flops"] < 1.05e9
