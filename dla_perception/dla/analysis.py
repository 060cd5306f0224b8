"""Predict where TensorRT will place each layer of an ONNX model when building for a DLA core with GPU
fallback: per node DLA or GPU with the reason, the DLA subgraphs (each one DLA loadable), the DLA<->GPU
boundaries (each a reformat and a synchronisation on the robot) and a one-line verdict.

Vocabulary shared with the engine build's placement report (`runtime/`): devices are "DLA" and "GPU", a
DLA "subgraph" is what TensorRT compiles into one DLA loadable (shown as `{ForeignNode[first...last]}` in
its engine inspector), a "boundary" is a tensor that crosses between a DLA subgraph and the GPU.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from dla_perception.dla import checks, qdq, rules
from dla_perception.dla.graph import LoadedGraph, is_static, load_graph, present, shape_of
from dla_perception.dla.report import DLA, GPU, Boundary, NodePlacement, Report, Subgraph

PRECISIONS = ("fp16", "int8")
FUSABLE_ACTIVATIONS = ("Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh")


def analyze(
    model_or_path: onnx.ModelProto | str | Path,
    trt_version: str = rules.DEFAULT_TRT_VERSION,
    precision: str = "fp16",
    input_shapes: dict[str, Sequence[int]] | None = None,
) -> Report:
    """Predict the DLA/GPU placement of every node of an ONNX model for one TensorRT line.

    `input_shapes` fixes dynamic input dimensions, as a TensorRT profile with min = opt = max would.
    ValueError for an unreadable model, an unknown TensorRT line, a precision DLA does not run or an
    input shape that does not fit the model.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"DLA runs fp16 or int8, not {precision!r}")
    line = rules.trt_line(rules.parse_trt_version(trt_version))
    loaded = load_graph(model_or_path, input_shapes=input_shapes)
    quantized = qdq.quantized_tensors(loaded.graph) if qdq.is_qdq_model(loaded.graph) else frozenset()
    if quantized:
        precision = "int8"  # a Q/DQ model is INT8 whatever was asked; build-engine builds it so
    context = checks.Context(loaded.opset, precision, line.strongly_typed_only, quantized)
    version = ".".join(str(trt_version).split(".")[:2])

    placements = {node.name: _place(node, context, line, version) for node in loaded.graph.nodes}
    _mark_fusions(loaded.graph, placements)
    subgraphs = _partition(loaded.graph, placements)
    boundaries = _boundaries(loaded.graph, placements)
    dla_names = {name for name, place in placements.items() if place.device == DLA}
    nodes = _in_original_order(loaded, placements)
    warnings = list(loaded.warnings)
    if quantized:
        unscaled = qdq.unscaled_dla_tensors(loaded.graph, dla_names, quantized)
        if unscaled:
            shown = ", ".join(unscaled[:4]) + (", ..." if len(unscaled) > 4 else "")
            warnings.append(f"{len(unscaled)} tensor(s) of DLA layers carry no INT8 scale, so their layers "
                            f"run in FP16 inside the DLA subgraph: {shown}")
    if len(subgraphs) > rules.MAX_LOADABLES_PER_CORE:
        warnings.append(
            f"{len(subgraphs)} DLA subgraphs: a DLA core holds at most {rules.MAX_LOADABLES_PER_CORE} "
            "loadables at once"
        )
    return Report(
        model=loaded.source,
        trt_version=version,
        precision=precision,
        trt_note=line.note,
        nodes=nodes,
        subgraphs=subgraphs,
        boundaries=boundaries,
        findings=_findings(loaded, line, quantized),
        warnings=warnings,
        dla_available=line.dla,
    )


# --- placement ------------------------------------------------------------------------------------------


def _place(node: gs.Node, context: checks.Context, line: rules.TrtLine, version: str) -> NodePlacement:
    rule = rules.rule_for(node.op)
    placement = NodePlacement(
        node.name, node.op, rule.layer, GPU, rule.id, [], rule.certainty, rule.source, rule.reason
    )
    if rule.id == "quantize":
        becomes_scale, placement.reasons = qdq.place(node)
        placement.layer = "Quantize" if node.op == qdq.QUANTIZE else "Dequantize"
        placement.device = None if becomes_scale else GPU
        return placement
    if rule.id == "no-layer":
        placement.device = None
        placement.reasons = [rule.reason]
        return placement
    if rule.layer is None:
        placement.layer = node.op  # a GPU layer whose TensorRT type this check does not track
    if not line.dla:
        placement.reasons = [line.note]
        return placement
    if not rule.dla:
        placement.reasons = [rule.reason]
        return placement
    if rule.since and rules.parse_trt_version(version) < rule.since:
        placement.reasons = [f"not before TensorRT {rule.since[0]}.{rule.since[1]}: {rule.reason}"]
        return placement
    general = rules.GENERAL_RULES_BY_ID
    limits = {**general["rank-4"].limits, **general["dimension-limits"].limits}
    failed = checks.general(node, context, limits)
    problems = [text for _, text in failed]
    if rule.check:
        problems += checks.CHECKERS[rule.check](node, rule, context)
    if problems:
        placement.reasons = problems
        if failed:  # name the general rule that failed first; the layer's own rule stays in rule_reason
            first = general[failed[0][0]]
            placement.rule, placement.certainty, placement.source = first.id, first.certainty, first.source
        return placement
    placement.device = DLA
    placement.reasons = [f"{rule.layer} within DLA limits"]
    return placement


def _mark_fusions(graph: gs.Graph, placements: dict[str, NodePlacement]) -> None:
    """Conv + BatchNorm + activation become one layer when the intermediate tensors have one consumer."""
    for node in graph.nodes:
        if node.op not in ("BatchNormalization", *FUSABLE_ACTIVATIONS):
            continue
        producer = node.inputs[0].inputs[0] if node.inputs and node.inputs[0].inputs else None
        if producer is None or len(node.inputs[0].outputs) != 1 or node.inputs[0] in graph.outputs:
            continue
        host = placements[producer.name]
        host_name = host.fused_into or host.name
        host_op = placements[host_name].op
        fusable = host_op == "Conv" and (
            (node.op == "BatchNormalization" and producer.op == "Conv")
            or (node.op in FUSABLE_ACTIVATIONS and producer.op in ("Conv", "BatchNormalization"))
        )
        if fusable and host.device == placements[node.name].device:
            placements[node.name].fused_into = host_name


def _layer_predecessors(graph: gs.Graph, placements: dict[str, NodePlacement]) -> dict[str, set[str]]:
    """Predecessor layers of every node, looking through nodes that are not layers (Identity...)."""
    preds: dict[str, set[str]] = {}
    for node in graph.nodes:  # topological order
        found: set[str] = set()
        for tensor in node.inputs:
            for producer in tensor.inputs if present(tensor) else []:
                if placements[producer.name].device is None:
                    found |= preds.get(producer.name, set())
                else:
                    found.add(producer.name)
        preds[node.name] = found
    return preds


def _partition(graph: gs.Graph, placements: dict[str, NodePlacement]) -> list[Subgraph]:
    """Group DLA layers into subgraphs that keep the graph acyclic.

    Every node gets a stage: the most device switches on any path from the inputs. DLA layers of the same
    stage joined by direct edges form one subgraph; a path that leaves a subgraph for the GPU and comes
    back would raise the stage by two, so no subgraph depends on itself through the GPU. TensorRT's own
    partitioner is greedy in a similar way; on unusual branch structures it may merge differently.
    """
    preds = _layer_predecessors(graph, placements)
    stage: dict[str, int] = {}
    for node in graph.nodes:
        place = placements[node.name]
        if place.device is None:
            continue
        stage[node.name] = max(
            (stage[p] + (placements[p].device != place.device) for p in preds[node.name]), default=0
        )
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    dla_nodes = [n.name for n in graph.nodes if placements[n.name].device == DLA]
    for name in dla_nodes:
        parent[name] = name
    for name in dla_nodes:
        for p in preds[name]:
            if placements[p].device == DLA and stage[p] == stage[name]:
                parent[root(p)] = root(name)
    groups: dict[str, list[str]] = defaultdict(list)
    for name in dla_nodes:
        groups[root(name)].append(name)
    subgraphs = []
    for index, members in enumerate(groups.values()):
        for name in members:
            placements[name].subgraph = index
        subgraphs.append(Subgraph(index, members, [], []))
    _subgraph_io(graph, placements, subgraphs)
    return subgraphs


def _subgraph_io(graph: gs.Graph, placements: dict[str, NodePlacement], subgraphs: list[Subgraph]) -> None:
    for node in graph.nodes:
        index = placements[node.name].subgraph
        if index is None:
            continue
        for tensor in node.inputs:
            if not present(tensor) or isinstance(tensor, gs.Constant):
                continue
            sources = {_source_subgraph(tensor, placements)}
            if sources != {index} and tensor.name not in subgraphs[index].inputs:
                if not _is_weight(tensor):
                    subgraphs[index].inputs.append(tensor.name)
        for tensor in node.outputs:
            targets = {placements[c.name].subgraph for c in tensor.outputs}
            leaves = tensor in graph.outputs or targets - {index}
            if leaves and tensor.name not in subgraphs[index].outputs:
                subgraphs[index].outputs.append(tensor.name)


def _is_weight(tensor: gs.Tensor) -> bool:
    return bool(tensor.inputs) and tensor.inputs[0].op == "Constant"


def _source_subgraph(tensor: gs.Tensor, placements: dict[str, NodePlacement]) -> int | None:
    return placements[tensor.inputs[0].name].subgraph if tensor.inputs else None


def _partition_of(name: str, placements: dict[str, NodePlacement]) -> tuple[str, int | None]:
    place = placements[name]
    return place.device or "", place.subgraph


def _boundaries(graph: gs.Graph, placements: dict[str, NodePlacement]) -> list[Boundary]:
    """Tensors whose producer and consumer layers sit on different devices or DLA subgraphs."""
    found: list[Boundary] = []
    for node in graph.nodes:
        if placements[node.name].device is None:
            continue
        for tensor in node.outputs:
            by_target: dict[tuple[str, int | None], list[str]] = defaultdict(list)
            for consumer in _consumer_layers(tensor, placements):
                by_target[_partition_of(consumer, placements)].append(consumer)
            source = _partition_of(node.name, placements)
            for (device, subgraph), consumers in by_target.items():
                if (device, subgraph) != source and DLA in (device, source[0]):
                    found.append(
                        Boundary(tensor.name, node.name, source[0], device, consumers, source[1], subgraph)
                    )
    return found


def _consumer_layers(tensor: gs.Tensor, placements: dict[str, NodePlacement]) -> Iterable[str]:
    for consumer in tensor.outputs:
        if placements[consumer.name].device is None:
            for output in consumer.outputs:
                yield from _consumer_layers(output, placements)
        else:
            yield consumer.name


def _in_original_order(loaded: LoadedGraph, placements: dict[str, NodePlacement]) -> list[NodePlacement]:
    nodes: list[NodePlacement] = []
    for name, op in loaded.original_nodes:
        if name in placements:
            nodes.append(placements.pop(name))
        else:
            reason = ("quantized weights: folded into the layer that uses them" if op == qdq.DEQUANTIZE else
                      "constant or shape computation, folded at build time: not a layer")
            nodes.append(NodePlacement(name, op, None, None, "folded", [reason]))
    nodes.extend(placements.values())  # nodes created by folding (rare)
    return nodes


def _findings(loaded: LoadedGraph, line: rules.TrtLine, quantized: frozenset[str] = frozenset()) -> list[str]:
    findings = []
    if quantized:
        scales = sum(1 for node in loaded.graph.nodes if node.op == qdq.QUANTIZE)
        findings.append(f"explicitly quantized (Q/DQ) model, analysed as int8: {scales} activation scale(s); "
                        "TensorRT 10 builds it for DLA with these scales as a calibration cache "
                        "(build-engine), TensorRT 11.4+ as a strongly typed network")
    if line.strongly_typed_only and any(
        np.dtype(t.dtype) == np.float32 and t.name not in quantized
        for t in loaded.graph.inputs if t.dtype is not None
    ):
        findings.append(
            "float32 inputs: this TensorRT line builds DLA engines from strongly typed networks only, "
            "and DLA does not run FP32; export the model in float16"
        )
    for tensor in loaded.graph.inputs:
        shape = shape_of(tensor)
        if not is_static(shape):
            findings.append(
                f"input '{tensor.name}' has dynamic or unknown shape {list(shape) if shape else shape}: "
                "DLA needs static shapes (export with fixed dimensions)"
            )
    return findings
