"""Graph JSON for Neuronpedia and circuit-tracer's viewer, and reading it back.

Node ids follow circuit-tracer: transcoder features `{layer}_{feature}_{pos}`, token embeddings
`E_{token}_{pos}`, logits `{n_layers + 1}_{vocab}_{pos}`. Ours differ where circuit-tracer's can
collide: error nodes are `mlp_err_{layer}_{pos}` / `attn_err_{layer}_{pos}` (circuit-tracer writes
`0_{layer}_{pos}`, which is also the id of layer-0 feature `layer` at `pos`), and attention-SAE
features are `A{layer}_{feature}_{pos}`. A feature's `feature` field is its global index
`layer × 10^k + feature` (10^k the first power of ten ≥ the dictionary width; attention features
count their layers after the MLP layers), and its feature JSON lies at
`{feature_json_base_url}/{feature}.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from interp.errors import InterpError

if TYPE_CHECKING:  # reading a graph JSON (graph-info, the app) must not import torch or TransformerLens
    from interp.graph.attribution import AttributionGraph, Node
    from interp.graph.prune import Pruned

SCHEMA_PATH = Path(__file__).with_name("attribution-graph.schema.json")
FEATURE_TYPES = {"mlp": "cross layer transcoder", "attn": "attention sae feature",
                 "mlp_error": "mlp reconstruction error", "attn_error": "attention reconstruction error",
                 "embedding": "embedding", "logit": "logit"}


def feature_offset(d_sae: int) -> int:
    return 10 ** math.ceil(math.log10(max(d_sae, 2)))


def global_feature_index(kind: str, layer: int, feature: int, n_layers: int, d_sae: int) -> int:
    """One integer per dictionary feature, unique across MLP and attention dictionaries."""
    block = layer if kind == "mlp" else n_layers + layer
    return block * feature_offset(d_sae) + feature


def node_id(node: Node, n_layers: int) -> str:
    if node.kind == "mlp":
        return f"{node.layer}_{node.index}_{node.pos}"
    if node.kind == "attn":
        return f"A{node.layer}_{node.index}_{node.pos}"
    if node.kind in ("mlp_error", "attn_error"):
        return f"{node.kind.split('_')[0]}_err_{node.layer}_{node.pos}"
    if node.kind == "embedding":
        return f"E_{node.index}_{node.pos}"
    return f"{n_layers + 1}_{node.index}_{node.pos}"


def _js_node_id(node: Node, nid: str) -> str:
    if node.kind == "mlp":
        return f"{node.layer}_{node.index}-0"
    if node.kind == "attn":
        return f"A{node.layer}_{node.index}-0"
    if node.kind == "embedding":
        return f"E_{node.index}-{node.pos}"
    if node.kind == "logit":
        return f"L_{node.index}-{node.pos}"
    return nid


@dataclasses.dataclass
class GraphNode:
    """One node of the graph JSON (as circuit-tracer's frontend model and Neuronpedia read it)."""

    node_id: str
    feature: int | None
    layer: str
    ctx_idx: int
    feature_type: str
    jsNodeId: str
    clerp: str
    influence: float
    activation: float | None
    token_prob: float | None = None        # logits only
    is_target_logit: bool | None = None    # logits only

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("token_prob", "is_target_logit"):
            if out[key] is None:
                del out[key]
        return out


@dataclasses.dataclass
class GraphLink:
    source: str
    target: str
    weight: float


@dataclasses.dataclass
class QParams:
    """The viewer's state: pinned nodes, supernodes (groups), which links to show."""

    pinnedIds: list[str] = dataclasses.field(default_factory=list)
    supernodes: list[list[str]] = dataclasses.field(default_factory=list)
    linkType: str = "both"
    clickedId: str = ""
    sg_pos: str = ""


@dataclasses.dataclass
class GraphMetadata:
    slug: str
    scan: str
    prompt_tokens: list[str]
    prompt: str
    node_threshold: float
    feature_details: dict[str, Any]
    info: dict[str, Any]
    generation_settings: dict[str, Any]
    pruning_settings: dict[str, Any]
    interp: dict[str, Any]


@dataclasses.dataclass
class GraphFile:
    """A whole graph JSON file; `to_dict` checks it against the schema (and what the schema cannot say)."""

    metadata: GraphMetadata
    qParams: QParams
    nodes: list[GraphNode]
    links: list[GraphLink]

    def to_dict(self) -> dict[str, Any]:
        out = {"metadata": dataclasses.asdict(self.metadata), "qParams": dataclasses.asdict(self.qParams),
               "nodes": [n.to_dict() for n in self.nodes], "links": [dataclasses.asdict(e) for e in self.links]}
        return validate_graph_json(out, "exported graph")


def export_graph(graph: AttributionGraph, pruned: Pruned, slug: str = "graph", scan: str = "",
                 node_threshold: float = 0.8, edge_threshold: float = 0.98,
                 feature_json_base_url: str = "features", scores: dict[str, float] | None = None,
                 labels: dict[int, str] | None = None) -> dict[str, Any]:
    """The pruned graph as Neuronpedia graph JSON (validated against the schema before returning)."""
    keep = pruned.node_mask.nonzero().flatten().tolist()
    ids = {j: node_id(graph.nodes[j], graph.n_layers) for j in keep}
    nodes = []
    for j in keep:
        node = graph.nodes[j]
        nid = ids[j]
        entry = GraphNode(node_id=nid, feature=None, layer=str(node.layer), ctx_idx=node.pos,
                          feature_type=FEATURE_TYPES[node.kind], jsNodeId=_js_node_id(node, nid),
                          clerp=(labels or {}).get(j, node.label), influence=float(pruned.cumulative_scores[j]),
                          activation=None)
        if node.is_feature:
            entry.feature = global_feature_index(node.kind, node.layer, node.index, graph.n_layers,
                                                 graph.d_saes[node.kind])
            entry.activation = node.activation
        elif node.kind == "embedding":
            entry.feature, entry.layer = node.pos, "E"
            entry.clerp = entry.clerp or graph.token_strings[node.pos]
        elif node.kind == "logit":
            k = j - (graph.n_nodes - graph.n_logits)
            entry.feature, entry.layer, entry.activation = node.index, str(graph.n_layers + 1), node.activation
            entry.token_prob, entry.is_target_logit = graph.logit_weights[k], k == 0
        else:
            entry.clerp = entry.clerp or f"{node.kind.replace('_', ' ')} at layer {node.layer}, position {node.pos}"
        nodes.append(entry)
    targets, sources = pruned.edge_mask.nonzero(as_tuple=True)
    links = [GraphLink(ids[s], ids[t], float(graph.adjacency[t, s]))
             for t, s in zip(targets.tolist(), sources.tolist()) if s in ids and t in ids]
    metadata = GraphMetadata(
        slug=slug, scan=scan or graph.model_name or "interp", prompt_tokens=graph.token_strings, prompt=graph.prompt,
        node_threshold=node_threshold, feature_details={"feature_json_base_url": feature_json_base_url},
        info={"description": f"attribution graph ({graph.mode} replacement model)",
              "generator": {"name": "interp", "version": "0.1"}, "create_time_ms": time.time() * 1000},
        generation_settings={k: graph.settings[k] for k in
                             ("max_n_logits", "desired_logit_prob", "batch_size", "max_feature_nodes")},
        pruning_settings={"node_threshold": node_threshold, "edge_threshold": edge_threshold},
        interp={"mode": graph.mode, "n_layers": graph.n_layers, "d_saes": graph.d_saes,
                "target": graph.settings.get("target"), "contrast": graph.settings.get("contrast"),
                # graph mode bilinear-exact: the MLP basis, the attention nodes, the eigen basis' direction
                **{k: graph.settings[k] for k in ("basis", "attention", "eigen_direction") if k in graph.settings},
                **(scores or {})})
    return GraphFile(metadata, QParams(), nodes, links).to_dict()


def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_graph_json(data: Any, where: str = "graph JSON") -> dict[str, Any]:
    """Schema validity plus what the schema cannot say: unique node ids, finite node numbers
    (activation, influence, …), positions inside the prompt (0 ≤ ctx_idx < len(prompt_tokens)), links
    between known nodes, finite weights. InterpError (one line) on the first problem."""
    try:
        jsonschema.validate(data, _schema())
    except jsonschema.ValidationError as e:
        path = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise InterpError(f"{where} is not a valid attribution graph: at {path}: {e.message.splitlines()[0]}") from None
    n_tokens = len(data["metadata"]["prompt_tokens"])
    seen = set()
    for node in data["nodes"]:
        nid = node["node_id"]
        if nid in seen:
            raise InterpError(f"{where} is not a valid attribution graph: node id {nid!r} appears twice")
        seen.add(nid)
        for key, value in node.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise InterpError(f"{where} is not a valid attribution graph: node {nid!r} has a non-finite {key}")
        if not 0 <= node["ctx_idx"] < n_tokens:
            raise InterpError(f"{where} is not a valid attribution graph: node {nid!r} is at position "
                              f"{node['ctx_idx']}, outside the prompt's {n_tokens} tokens (metadata.prompt_tokens)")
    for i, link in enumerate(data["links"]):
        for end in ("source", "target"):
            if link[end] not in seen:
                raise InterpError(f"{where} is not a valid attribution graph: link {i} has unknown {end} {link[end]!r}")
        if not math.isfinite(link["weight"]):
            raise InterpError(f"{where} is not a valid attribution graph: link {i} has a non-finite weight")
    return data


def read_graph_json(path: str | Path) -> dict[str, Any]:
    """Import a graph JSON file (ours, circuit-tracer's or Neuronpedia's), validated."""
    path = Path(path)
    if not path.is_file():
        raise InterpError(f"graph file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"graph file {path} is not valid JSON ({getattr(e, 'msg', e)}); re-export it") from None
    return validate_graph_json(data, f"graph file {path}")
