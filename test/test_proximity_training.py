"""The proximity training code (PyTorch, a training-only extra: skipped where torch is absent):
augmentations that keep labels exact, the cost volume's direction, the shift shared with the pipeline,
a DLA-clean export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dla_perception.models.proximity_geometry import shift_features as numpy_shift  # noqa: E402
from training.proximity.augment import Batcher  # noqa: E402
from training.proximity.dataset import FrameArrays, disparity_to_network, render_job, to_network  # noqa: E402
from training.proximity.network import CostVolume, FeatureNet, PlaneHead, shift_features  # noqa: E402
from training.proximity.train import MAX_DISPARITY, MIN_DISPARITY, sample_planes  # noqa: E402


def _frames(jobs) -> FrameArrays:
    arrays = FrameArrays.empty(len(jobs))
    for i, job in enumerate(jobs):
        arrays.left[i], arrays.right[i], arrays.disparity[i], arrays.right_disparity[i], arrays.source[i] = (
            render_job(job)
        )
    return arrays


def _warp_error(left, right, disparity) -> float:
    """Mean |left - right sampled at x - d| over known pixels away from edges, [3, H, W] tensors in [0, 1]."""
    _, h, w = left.shape
    xs = torch.arange(w).view(1, w) - torch.nan_to_num(disparity[0], nan=0.0)
    ys = (2 * (torch.arange(h).view(h, 1) + 0.5) / h - 1).expand(h, w)
    grid = torch.stack([2 * (xs + 0.5) / w - 1, ys], -1)
    warped = torch.nn.functional.grid_sample(right[None], grid[None], align_corners=False)[0]
    known = (torch.isfinite(disparity[0]) & (disparity[0] > 0.01)).float()[None, None]
    known = -torch.nn.functional.max_pool2d(-known, 5, 1, 2)[0, 0] > 0.5  # eroded
    return float((warped - left).abs().mean(0)[known].mean())


def test_geometric_augmentations_keep_the_labels_exact():
    frames = _frames([("flying", 5), ("street", 5)])
    batcher = Batcher(2, 240, 320, "cpu", torch.Generator().manual_seed(0))
    batcher.add(frames)
    for _ in range(3):
        index = torch.tensor([0] * 6 + [1] * 6)
        left = batcher.left[index].permute(0, 3, 1, 2).float() / 255
        right = batcher.right[index].permute(0, 3, 1, 2).float() / 255
        disparity = batcher.disparity[index].unsqueeze(1).float()
        right_disparity = batcher.right_disparity[index].unsqueeze(1).float()
        plain = [_warp_error(left[i], right[i], disparity[i]) for i in (0, 6)]
        out = batcher._geometric(left, right, disparity, right_disparity)
        for i in range(12):
            error = _warp_error(out[0][i], out[1][i], out[2][i])
            assert error < 2.5 * plain[i // 6] + 0.01, (i, error, plain)
    # the street frames have no right-view truth: they are never mirrored
    assert not torch.isfinite(batcher.right_disparity[1]).any()


def test_photometric_augmentation_changes_the_views_differently():
    frames = _frames([("thin", 1)])
    batcher = Batcher(1, 240, 320, "cpu", torch.Generator().manual_seed(1))
    batcher.add(frames)
    left, right, disparity = batcher.batch(4)
    assert left.shape == right.shape == (4, 3, 240, 320) and disparity.shape == (4, 1, 240, 320)
    assert 0.0 <= float(left.min()) and float(left.max()) <= 1.0
    assert float((left - right).abs().mean()) > 0.02


def test_cost_volume_peaks_at_the_offset_of_the_match():
    volume = CostVolume(8, radius=3, groups=2)
    left = torch.randn(1, 8, 2, 30)
    for k in (-2, 0, 3):
        right = torch.roll(left, shifts=-k, dims=3)  # right(x - k) == left(x): a disparity k px larger
        cost = volume(left, right)[0, :, :, 10:20].mean(dim=(1, 2)).view(7, 2).mean(dim=1)
        assert int(cost.argmax()) == k + 3


def test_training_shift_is_the_pipelines_shift():
    right = torch.randn(2, 5, 6, 12)
    shift = torch.tensor([[0.0, 0.5, 1.25, 3.0, 7.5, 11.9], [2.0] * 6])
    ours = shift_features(right, shift).numpy()
    for i in range(2):
        theirs = numpy_shift(right[i].numpy(), shift[i : i + 1].numpy())[0]
        np.testing.assert_allclose(ours[i], theirs, atol=1e-5)


def test_planes_cover_the_range_and_follow_the_truth():
    disparity = torch.full((8, 1, 24, 32), 20.0)
    planes = sample_planes(disparity, 16, torch.Generator().manual_seed(0))
    assert planes.shape == (8, 16, 24)
    constant = planes[(planes.max(dim=2).values == planes.min(dim=2).values)]
    assert float(constant.min()) >= MIN_DISPARITY and float(constant.max()) <= MAX_DISPARITY
    assert float(((constant > 15) & (constant < 27)).float().mean()) > 0.4  # half drawn around the truth


def test_network_size_data_are_resized_like_the_pipeline_resizes():
    disparity = np.full((480, 640), 10.0, np.float32)
    disparity[:, :5] = 0.0
    small = disparity_to_network(disparity)
    assert small.shape == (240, 320) and np.nanmax(small) == 5.0 and np.isnan(small[:, 0]).all()
    assert to_network(np.zeros((200, 300, 3), np.uint8)).shape == (240, 320, 3)


def test_export_is_static_dla_clean_and_matches_pytorch(tmp_path):
    from dla_perception.tools.cli import main as cli
    from training.proximity.export import export_onnx

    features, head = FeatureNet().eval(), PlaneHead().eval()
    export_onnx(features, head, tmp_path, 240, 320)  # checks onnxruntime against PyTorch itself
    for precision in ("fp16", "int8"):
        assert cli(["dla-check", str(tmp_path / "head.onnx"), "--strict", "--precision", precision]) == 0


def test_a_head_that_matches_the_guide_too_starts_as_the_head_it_grew_from(tmp_path):
    from dla_perception.models.proximity import ProximityPipeline, proximity_model_specs
    from dla_perception.runtime.config import EnginesConfig
    from dla_perception.runtime.manager import EngineManager
    from dla_perception.tools.cli import main as cli
    from training.proximity.export import export_onnx
    from training.proximity.network import load_matching

    torch.manual_seed(0)
    features, plain = FeatureNet().eval(), PlaneHead().eval()
    grown = PlaneHead(guide_radius=2).eval()
    fresh = load_matching(grown, plain.state_dict())  # every trained weight came over (refine's grew)
    assert fresh and all(name.startswith("guide_cost.") for name in fresh)  # its fixed shifts and sums
    maps, guide = features(torch.rand(2, 3, 240, 320))
    inputs = (maps[:1], maps[1:], guide[:1])
    with torch.no_grad():
        assert torch.equal(grown(*inputs, guide[1:]), plain(*inputs))
    with pytest.raises(ValueError, match="right guide"):
        grown(*inputs)
    matching = PlaneHead(guide_radius=1).eval()
    load_matching(matching, plain.state_dict())
    with torch.no_grad():
        matching.refine[0].weight[:, -6:].normal_()  # make the radius-1 costs count
        wider = PlaneHead(guide_radius=2).eval()
        load_matching(wider, matching.state_dict())  # its old offsets keep their weights, centred
        assert torch.allclose(wider(*inputs, guide[1:]), matching(*inputs, guide[1:]), atol=1e-6)
    narrower = PlaneHead(guide_radius=2, refine_channels=8)
    assert set(load_matching(narrower, plain.state_dict())) >= {"refine.0.weight", "fine_logit.weight"}
    pointwise = PlaneHead(guide_radius=1, fine_kernel=1).eval()  # its last layer starts from the kernel sum
    assert "fine_logit.weight" in load_matching(pointwise, plain.state_dict())
    assert torch.allclose(pointwise.fine_logit.weight, plain.fine_logit.weight.sum(dim=(2, 3), keepdim=True))
    old_refine = plain.refine[0].weight
    assert torch.equal(pointwise.refine[0].weight[:, : old_refine.shape[1]], old_refine)
    with torch.no_grad():
        assert pointwise(*inputs, guide[1:]).shape == plain(*inputs).shape

    export_onnx(features, grown, tmp_path, 240, 320)
    assert cli(["dla-check", str(tmp_path / "head.onnx"), "--strict"]) == 0
    specs = proximity_model_specs(tmp_path, features_cores=("cpu",), head_cores=("cpu",))
    with EngineManager(EnginesConfig(models={s.name: s for s in specs}), available_cores=("cpu",)) as mgr:
        pipeline = ProximityPipeline(mgr)
        image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        projection = np.array([[200.0, 0, 160, 0], [0, 200, 120, 0], [0, 0, 1, 0]])
        right_projection = projection.copy()
        right_projection[0, 3] = -200.0 * 0.1
        result = pipeline.process(image, image, "rgb8", projection, right_projection, [1.0, 2.0], 1.0)
    assert result.near_masks.shape == (2, 240, 320)
