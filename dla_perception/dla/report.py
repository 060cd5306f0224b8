"""The DLA check's report: per node placement, DLA subgraphs, boundaries, verdict, text and JSON forms.

Vocabulary shared with the engine build's placement report (runtime/tensorrt_placement.py): devices are
"DLA" and "GPU", a DLA "subgraph" is what TensorRT compiles into one DLA loadable (shown as
`{ForeignNode[first...last]}` by its engine inspector), a "boundary" is a tensor that crosses between a DLA
subgraph and the GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dla_perception.dla import rules

DLA, GPU = "DLA", "GPU"


@dataclass
class NodePlacement:
    name: str
    op: str
    layer: str | None  # TensorRT layer type; None when the node is not a layer
    device: str | None  # "DLA", "GPU", or None (folded at build time / aliased)
    rule: str
    reasons: list[str] = field(default_factory=list)
    certainty: str = rules.DOCUMENTED
    source: str = ""  # where the deciding rule comes from
    rule_reason: str = ""  # what the deciding rule says, in words
    subgraph: int | None = None  # index into Report.subgraphs when on DLA
    fused_into: str | None = None  # name of the layer TensorRT fuses this node into


@dataclass
class Subgraph:
    """A maximal set of connected DLA layers that TensorRT compiles into one DLA loadable."""

    index: int
    nodes: list[str]
    inputs: list[str]  # tensors entering from the network input or the GPU
    outputs: list[str]  # tensors leaving to the network output or the GPU


@dataclass
class Boundary:
    """A tensor that crosses between DLA and GPU, or from one DLA subgraph to another (DLA->DLA)."""

    tensor: str
    producer: str
    from_device: str
    to_device: str
    consumers: list[str]
    from_subgraph: int | None = None
    to_subgraph: int | None = None


@dataclass
class Report:
    model: str
    trt_version: str
    precision: str
    trt_note: str
    nodes: list[NodePlacement]
    subgraphs: list[Subgraph]
    boundaries: list[Boundary]
    findings: list[str]  # properties of the whole model (dynamic inputs...)
    warnings: list[str]
    dla_available: bool = True

    @property
    def layers(self) -> list[NodePlacement]:
        """Nodes that become TensorRT layers of their own (not folded, aliased or fused)."""
        return [n for n in self.nodes if n.device is not None and n.fused_into is None]

    @property
    def dla_nodes(self) -> list[NodePlacement]:
        return [n for n in self.nodes if n.device == DLA]

    @property
    def gpu_nodes(self) -> list[NodePlacement]:
        return [n for n in self.nodes if n.device == GPU]

    @property
    def gpu_layers(self) -> list[NodePlacement]:
        return [n for n in self.layers if n.device == GPU]

    @property
    def dla_layers(self) -> list[NodePlacement]:
        return [n for n in self.layers if n.device == DLA]

    @property
    def device_boundaries(self) -> list[Boundary]:
        """Boundaries between a DLA subgraph and the GPU (each costs a reformat and a sync)."""
        return [b for b in self.boundaries if b.from_device != b.to_device]

    @property
    def passes_strict(self) -> bool:
        """True when nothing falls back: every layer is predicted on DLA."""
        return self.dla_available and not self.gpu_nodes

    def counts(self) -> dict[str, int]:
        return {
            "nodes": len(self.nodes),
            "layers": len(self.layers),
            "dla_layers": len(self.dla_layers),
            "gpu_layers": len(self.gpu_layers),
            "folded": sum(1 for n in self.nodes if n.device is None),
            "fused": sum(1 for n in self.nodes if n.fused_into is not None),
            "subgraphs": len(self.subgraphs),
            "boundaries": len(self.device_boundaries),
            "subgraph_links": len(self.boundaries) - len(self.device_boundaries),
        }

    @property
    def verdict(self) -> str:
        counts = self.counts()
        where = f"TensorRT {self.trt_version}, {self.precision}"
        if not self.dla_available:
            return f"NO DLA: {self.trt_note} ({where})"
        if not counts["layers"]:
            return f"NO LAYERS: every node folds away at build time ({where})"
        if self.passes_strict:
            return (
                f"DLA: all {counts['layers']} layers on DLA in {counts['subgraphs']} subgraph(s), "
                f"no GPU fallback ({where})"
            )
        ops = sorted({n.op for n in self.gpu_layers})
        if not counts["dla_layers"]:
            return f"GPU: no layer can run on DLA ({', '.join(ops)}) ({where})"
        return (
            f"GPU FALLBACK: {counts['gpu_layers']} of {counts['layers']} layers on the GPU "
            f"({', '.join(ops)}); {counts['subgraphs']} DLA subgraph(s), {counts['boundaries']} "
            f"DLA<->GPU boundaries ({where})"
        )

    def placement(self) -> dict[str, Any]:
        """The prediction in the shape of the engine build's placement report
        (`runtime.tensorrt_placement.placement_report`), so the two can be put side by side."""
        return {
            "DLA": len(self.dla_layers),
            "GPU": len(self.gpu_layers),
            "subgraphs": len(self.subgraphs),
            "boundaries": len(self.device_boundaries),
            "dla_subgraph_names": [f"{{ForeignNode[{s.nodes[0]}...{s.nodes[-1]}]}}" for s in self.subgraphs],
            "gpu_layer_names": [n.name for n in self.gpu_layers],
            "verdict": self.verdict,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "trt_version": self.trt_version,
            "precision": self.precision,
            "trt_note": self.trt_note,
            "dla_available": self.dla_available,
            "verdict": self.verdict,
            "passes_strict": self.passes_strict,
            "counts": self.counts(),
            "placement": self.placement(),
            "findings": list(self.findings),
            "warnings": list(self.warnings),
            "nodes": [asdict(n) for n in self.nodes],
            "subgraphs": [asdict(s) for s in self.subgraphs],
            "boundaries": [asdict(b) for b in self.boundaries],
        }

    def format_text(self, verbose: bool = False) -> str:
        """Human-readable report: GPU layers with reasons, subgraphs, boundaries, verdict last."""
        lines = [f"model: {self.model}", f"TensorRT {self.trt_version}: {self.trt_note}"]
        lines += [f"finding: {text}" for text in self.findings]
        lines += [f"warning: {text}" for text in self.warnings]
        shown = self.nodes if verbose else [n for n in self.nodes if n.device == GPU and self.dla_available]
        if shown:
            lines.append("nodes (DLA#n = on DLA in subgraph n):" if verbose else "GPU fallback:")
        for node in shown:
            device = f"DLA#{node.subgraph}" if node.device == DLA else node.device or "-"
            detail = "; ".join(node.reasons) or node.rule_reason
            if node.fused_into:
                detail = f"fused into {node.fused_into}"
            elif node.device is None:
                detail = detail or "folded at build time"
            flagged = node.device == GPU or node.certainty == rules.UNCERTAIN
            suffix = f" [{node.rule}, {node.certainty}]" if flagged and node.device else ""
            lines.append(f"  {device:<6} {node.op:<18} {node.name}: {detail}{suffix}")
        for subgraph in self.subgraphs:
            first, last = subgraph.nodes[0], subgraph.nodes[-1]
            lines.append(f"DLA subgraph {subgraph.index}: {len(subgraph.nodes)} nodes [{first}...{last}]")
        for boundary in self.boundaries:
            lines.append(
                f"boundary {boundary.from_device}->{boundary.to_device}: '{boundary.tensor}' "
                f"({boundary.producer} -> {', '.join(boundary.consumers)})"
            )
        lines.append("verdict: " + self.verdict)
        return "\n".join(lines)
