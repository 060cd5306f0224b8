"""Where a TensorRT engine's layers really run: DLA, GPU, or I/O overhead between them.

Two sources, both TensorRT's own: the engine inspector (`ProfilingVerbosity.DETAILED` JSON: one dict per
engine layer with "Name" and "LayerType") and the builder's "Layers Running on DLA/GPU" lists, captured at
build time by the shared logger and stored beside the plan. The names alone mislead:
- `{ForeignNode[...]}` is a DLA loadable *or* a GPU subgraph compiled by Myelin ("LayerType": "Myelin"),
  so a GPU engine can look like DLA and GPU fallback inside a DLA engine can hide;
- `<tensor> to nvm`, `<tensor> from nvm`, `<tensor> copy finish` move tensors in and out of a DLA loadable
  (NVIDIA/TensorRT#3143), and "LayerType": "Reformat" layers convert formats: overhead, not fallback.
So every engine layer is classified as "DLA", "GPU", "reformat", "io" (DLA I/O) or "noop", and the
verdict says GPU FALLBACK only when layers of the network itself run on the GPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

DLA_IO_SUFFIXES = (" to nvm", " from nvm", " copy finish")
FOREIGN_NODE = "{ForeignNode["


def engine_layers(trt: ModuleType, engine: Any) -> list[dict[str, Any]]:
    """The inspector's layers as dicts with at least "Name" (and "LayerType" with DETAILED verbosity)."""
    info = json.loads(
        engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    )
    return [
        dict(layer) if isinstance(layer, dict) else {"Name": str(layer)} for layer in info.get("Layers", [])
    ]


def classify(layer: Mapping[str, Any], dla_engine: bool, builder: Mapping[str, list[str]] | None) -> str:
    name, kind = str(layer.get("Name", "")), layer.get("LayerType")
    if name.endswith(DLA_IO_SUFFIXES):
        return "io"
    if kind == "Reformat" or name.startswith("Reformatting CopyNode"):
        return "reformat"
    if kind == "NoOp":
        return "noop"
    if not name.startswith(FOREIGN_NODE):
        return "GPU"
    if kind == "Myelin":
        return "GPU"
    if builder is not None:
        if name in builder.get("DLA", ()):
            return "DLA"
        if any(name in entry for entry in builder.get("GPU", ())):
            return "GPU"
    return "DLA" if dla_engine else "GPU"


def placement_report(
    layers: Iterable[Mapping[str, Any]],
    *,
    dla_engine: bool,
    builder: Mapping[str, list[str]] | None = None,
    predicted_dla_layers: int | None = None,
) -> dict[str, Any]:
    """The placement report in dla-check's vocabulary ("DLA", "GPU", "subgraphs", names, verdict)."""
    layers = list(layers)
    names: dict[str, list[str]] = {"DLA": [], "GPU": [], "reformat": [], "io": [], "noop": []}
    myelin = 0
    for layer in layers:
        where = classify(layer, dla_engine, builder)
        names[where].append(str(layer.get("Name", "")))
        myelin += where == "GPU" and layer.get("LayerType") == "Myelin"
    detailed = any("LayerType" in layer for layer in layers)
    source = (
        "builder log and inspector"
        if builder is not None
        else "inspector layer types"
        if detailed
        else "inspector names only (Myelin GPU subgraphs and DLA subgraphs look alike)"
    )
    report: dict[str, Any] = {
        "DLA": len(names["DLA"]),
        "GPU": len(names["GPU"]),
        "subgraphs": len(names["DLA"]),
        "myelin_subgraphs": myelin,
        "reformats": len(names["reformat"]),
        "dla_io": len(names["io"]),
        "dla_subgraph_names": names["DLA"],
        "gpu_layer_names": names["GPU"],
        "reformat_names": names["reformat"],
        "dla_io_names": names["io"],
        "dla_engine": dla_engine,
        "gpu_fallback": dla_engine and bool(names["GPU"]),
        "builder": dict(builder) if builder is not None else None,
        "source": source,
        "predicted_dla_layers": predicted_dla_layers,
    }
    report["verdict"] = _verdict(report)
    return report


def _verdict(report: Mapping[str, Any]) -> str:
    overhead = f"{report['dla_io']} DLA I/O node(s), {report['reformats']} reformat(s)"
    gpu = report["GPU"]
    if not report["dla_engine"]:
        myelin = (
            f", {report['myelin_subgraphs']} of them Myelin subgraph(s)" if report["myelin_subgraphs"] else ""
        )
        return f"GPU: {gpu} layer(s) on the GPU{myelin}, none on DLA"
    if not report["subgraphs"]:
        return f"GPU FALLBACK: built for DLA, yet no layer runs there; {gpu} layer(s) on the GPU"
    if not gpu:
        return f"DLA: {report['subgraphs']} DLA subgraph(s), no GPU fallback ({overhead})"
    shown = ", ".join(report["gpu_layer_names"][:5]) + (", ..." if gpu > 5 else "")
    subgraphs = report["subgraphs"]
    return f"GPU FALLBACK: {subgraphs} DLA subgraph(s); {gpu} layer(s) on the GPU ({shown}); {overhead}"


def format_report(report: Mapping[str, Any]) -> str:
    """Human-readable placement report for `dla-perception build-engine`."""
    lines = [report["verdict"]]
    lines += [f"  DLA  {name}" for name in report["dla_subgraph_names"]]
    lines += [f"  GPU  {name}" for name in report["gpu_layer_names"]]
    if report["dla_io"] or report["reformats"]:
        lines.append(
            f"  overhead: {report['dla_io']} DLA I/O node(s) (to/from nvm, copy finish), "
            f"{report['reformats']} reformat(s) on the GPU"
        )
    if report.get("predicted_dla_layers") is not None:
        lines.append(
            f"  (before the build, can_run_on_DLA accepted {report['predicted_dla_layers']} network "
            "layer(s): a prediction, not the placement)"
        )
    lines.append(f"  source: {report['source']}")
    return "\n".join(lines)
