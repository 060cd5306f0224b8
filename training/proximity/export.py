"""ONNX export of the two proximity networks: static shapes, opset 17, BatchNorm folded into convolutions.

    python -m training.proximity.export CHECKPOINT.pt --out models/proximity

Folding BatchNorm by hand leaves only Conv/ConvTranspose/AveragePool/Relu/Mul/Add/Concat/Sigmoid in the head,
whatever the exporter version does with BatchNormalization, and checks the result against PyTorch with
onnxruntime. features.onnx: `images` [2, 3, H, W] -> `features` [2, C, H/4, W/4], `guide` [2, G, H/2, W/2];
head.onnx: `left_features`, `right_shifted` [B, C, H/4, W/4], `left_guide` [B, G, H/2, W/2] (a head trained
with --guide-radius also `right_guide_shifted`, the same shape) ->
`near_probability` [B, 1, H/2, W/2], B = HEAD_BATCH.

HEAD_BATCH is 1: a frame's queries (planes, alert distance, ground, mount check) are never a multiple of a
larger batch, and a padded slot costs a whole plane. One plane a call, the manager spreads the calls over
dla0/dla1, and no query count puts more planes on one core's critical path than ceil(queries / 2).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.proximity.network import FeatureNet, PlaneHead

OPSET = 17
HEAD_BATCH = 1


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy in eval mode with every Conv2d+BatchNorm2d pair of an nn.Sequential fused into one Conv2d."""
    module = copy.deepcopy(module).eval()
    for parent in module.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = parent._modules.get(first), parent._modules.get(second)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                parent._modules[first] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
                del parent._modules[second]  # no Identity node left behind in the graph
    return module


class _HeadForExport(nn.Module):
    def __init__(self, head: PlaneHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(*inputs)


def export_onnx(
    features: FeatureNet,
    head: PlaneHead,
    out_dir: Path,
    net_height: int,
    net_width: int,
    head_batch: int = HEAD_BATCH,
) -> tuple[Path, Path]:
    """Write features.onnx and head.onnx into out_dir; return their paths."""
    import onnx
    import onnxruntime as ort

    out_dir.mkdir(parents=True, exist_ok=True)
    features = fold_batchnorm(features).cpu().float()
    matches_guide = head.guide_cost is not None
    head = _HeadForExport(fold_batchnorm(head)).cpu().float().eval()
    images = torch.rand(2, 3, net_height, net_width)
    with torch.no_grad():
        feature_maps, guide_maps = features(images)
    _, channels, fh, fw = feature_maps.shape
    left = feature_maps[:1].repeat(head_batch, 1, 1, 1)
    right = feature_maps[1:].repeat(head_batch, 1, 1, 1)
    guide = guide_maps[:1].repeat(head_batch, 1, 1, 1)
    head_inputs = (left, right, guide)
    head_names = ["left_features", "right_shifted", "left_guide"]
    if matches_guide:
        head_inputs += (guide_maps[1:].repeat(head_batch, 1, 1, 1),)
        head_names.append("right_guide_shifted")

    features_path, head_path = out_dir / "features.onnx", out_dir / "head.onnx"
    _export(features, (images,), features_path, ["images"], ["features", "guide"])
    _export(head, head_inputs, head_path, head_names, ["near_probability"])

    for path in (features_path, head_path):
        _inline_identity_initializers(path)
    for path, model, inputs, names in (
        (features_path, features, (images,), ["images"]),
        (head_path, head, head_inputs, head_names),
    ):
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        with torch.no_grad():
            want = model(*inputs)
        want = want if isinstance(want, tuple) else (want,)
        error = max(float(np.max(np.abs(g - w.numpy()))) for g, w in zip(got, want, strict=True))
        print(
            f"exported {path} ({path.stat().st_size / 1e6:.2f} MB), max |onnxruntime - torch| = {error:.2e}"
        )
        if error > 1e-3:
            raise RuntimeError(f"{path}: onnxruntime disagrees with PyTorch by {error}")
    print(
        f"features: [2, 3, {net_height}, {net_width}] -> [2, {channels}, {fh}, {fw}] + guide "
        f"{list(guide_maps.shape)}; head: [{head_batch}, {channels}, {fh}, {fw}] x 2 + "
        f"{' + '.join(head_names[2:])} -> "
        f"[{head_batch}, 1, {2 * fh}, {2 * fw}]"
    )
    return features_path, head_path


def _export(model: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str]) -> None:
    torch.onnx.export(
        model,
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def _inline_identity_initializers(path: Path) -> None:
    """Replace Identity nodes on initializers (the exporter's de-duplication of equal weights) by copies:
    Identity is not on DLA's layer list, a constant weight is."""
    import onnx

    model = onnx.load(str(path))
    initializers = {init.name: init for init in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy_ = onnx.TensorProto()
            copy_.CopyFrom(initializers[node.input[0]])
            copy_.name = node.output[0]
            model.graph.initializer.append(copy_)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    onnx.save(model, str(path))


def load_checkpoint(path: Path) -> tuple[FeatureNet, PlaneHead, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    features = FeatureNet(state["channels"], state["guide_channels"])
    head = PlaneHead(state["channels"], state["guide_channels"], **state.get("head_architecture", {}))
    features.load_state_dict(state["features"])
    head.load_state_dict(state["head"])
    return features, head, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path("models/proximity"))
    parser.add_argument("--head-batch", type=int, default=HEAD_BATCH)
    args = parser.parse_args()
    features, head, state = load_checkpoint(args.checkpoint)
    export_onnx(features, head, args.out, state["net_height"], state["net_width"], args.head_batch)


if __name__ == "__main__":
    main()
