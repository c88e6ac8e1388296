"""What the app may read, and what lies there: checkpoint folders and saved graphs.

The app reads only inside its *roots*: the project's `checkpoints/` and `circuits/`, or the folders
given when it starts (`streamlit run app/Home.py -- --checkpoints DIR --circuits DIR`, or the
environment variables `INTERP_CHECKPOINTS` / `INTERP_CIRCUITS`, each an `os.pathsep`-separated
list). `guard` refuses any other path with an `InterpError`, which the app shows as a message, and so
it does a pipe, socket or device inside them. Listings follow a symlink only to a regular file that
lies inside the same root, and never open anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import stat
from pathlib import Path
from typing import Any, Mapping, Sequence

from interp.errors import InterpError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINTS = PROJECT_ROOT / "checkpoints"
DEFAULT_CIRCUITS = PROJECT_ROOT / "circuits"
ENV_CHECKPOINTS = "INTERP_CHECKPOINTS"
ENV_CIRCUITS = "INTERP_CIRCUITS"


@dataclasses.dataclass(frozen=True)
class Roots:
    """The folders the app may read: checkpoints and saved graphs."""

    checkpoints: tuple[Path, ...]
    circuits: tuple[Path, ...]

    @property
    def all(self) -> tuple[Path, ...]:
        return self.checkpoints + self.circuits


def _split(value: str) -> list[Path]:
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


def roots_from(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Roots:
    """Roots from the command line (`--checkpoints DIR`, `--circuits DIR`, repeatable), else the
    environment, else the project's own folders. Unknown arguments are ignored: under pytest or
    Streamlit's test harness `sys.argv` belongs to someone else."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--checkpoints", action="append", default=[])
    parser.add_argument("--circuits", action="append", default=[])
    args, _ = parser.parse_known_args(list(argv or []))
    checkpoints = [Path(p).expanduser().resolve() for p in args.checkpoints]
    circuits = [Path(p).expanduser().resolve() for p in args.circuits]
    if not checkpoints:
        checkpoints = _split(environ.get(ENV_CHECKPOINTS, "")) or [DEFAULT_CHECKPOINTS.resolve()]
    if not circuits:
        circuits = _split(environ.get(ENV_CIRCUITS, "")) or [DEFAULT_CIRCUITS.resolve()]
    return Roots(tuple(checkpoints), tuple(circuits))


def is_inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


def guard(path: str | Path, roots: Roots, within: Sequence[Path] | None = None) -> Path:
    """The resolved path if it lies inside one of the roots (symlinks and `..` resolved first),
    else an `InterpError` naming the folders the app may read."""
    allowed = tuple(within) if within is not None else roots.all
    text = str(path).strip()
    if not text:
        raise InterpError("empty path: choose a folder under " + ", ".join(str(r) for r in allowed))
    p = Path(text).expanduser()
    if not p.is_absolute():
        # A relative path is read against the project, as a user of `make app` would expect.
        p = PROJECT_ROOT / p
    resolved = p.resolve()
    if not any(is_inside(resolved, r) for r in allowed):
        raise InterpError(f"refused: {text} lies outside the folders this app may read "
                          f"({', '.join(str(r) for r in allowed)}); start the app with "
                          f"--checkpoints/--circuits DIR to allow another folder")
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        return resolved  # not there (yet): whoever reads it says so
    except OSError as e:
        raise InterpError(f"refused: {text} cannot be examined ({e.strerror})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InterpError(f"refused: {text} is not a regular file or a folder (a pipe, socket or device is never read)")
    return resolved


def regular_file_inside(path: Path, root: Path) -> Path | None:
    """`path` resolved (symlinks followed), if it is a regular file inside `root`; else None.
    Only `stat` is called: a pipe, socket or device is never opened, a link that leaves the root never read."""
    try:
        resolved = path.resolve()
        if not is_inside(resolved, root):
            return None
        return resolved if stat.S_ISREG(os.stat(resolved).st_mode) else None
    except (OSError, RuntimeError):  # a dangling link, a loop of links, no permission
        return None


@dataclasses.dataclass
class CheckpointInfo:
    """One checkpoint folder: its name relative to its root, its config and its metrics."""

    name: str
    path: Path
    kind: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    size_bytes: int

    @property
    def arch(self) -> str | None:
        """The architecture, wherever the area that wrote the config put it."""
        model = self.config.get("model")
        if isinstance(model, dict) and model.get("arch"):
            return str(model["arch"])
        for key in ("arch", "architecture", "act_fn"):
            if self.config.get(key):
                return str(self.config[key])
        return None


def _read_json_dict(path: Path) -> dict[str, Any] | None:
    """A JSON object from a regular file, else None. Opened without blocking and checked again once
    open, so that a file swapped for a pipe after it was listed cannot hang the reader."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            value = json.loads(f.read().decode("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _folder_size(folder: Path, root: Path) -> int:
    files = (regular_file_inside(f, root) for f in folder.rglob("*"))
    return sum(f.stat().st_size for f in files if f is not None)


def list_checkpoints(roots: Roots, kind: str | Sequence[str] | None = None) -> list[CheckpointInfo]:
    """Every folder under the checkpoint roots whose `config.json` holds a "kind" (nested ones too,
    e.g. `lm-bilinear/transcoders`), or that is a Hugging Face model folder (kind "hf"), sorted by name;
    optionally only those of the given kind(s)."""
    kinds = {kind} if isinstance(kind, str) else set(kind) if kind is not None else None
    found: list[CheckpointInfo] = []
    for root in roots.checkpoints:
        if not root.is_dir():
            continue
        for config_path in sorted(root.rglob("config.json")):
            folder = config_path.parent
            resolved = regular_file_inside(config_path, root)
            config = _read_json_dict(resolved) if resolved is not None else None
            if config is None:
                continue
            if "kind" not in config:
                # A Hugging Face model folder (config.json with a model_type beside safetensors weights).
                if "model_type" not in config or not any(folder.glob("*.safetensors")):
                    continue
                config = {**config, "kind": "hf", "arch": config["model_type"]}
            if kinds is not None and config["kind"] not in kinds:
                continue
            metrics_path = regular_file_inside(folder / "metrics.json", root)
            metrics = (_read_json_dict(metrics_path) if metrics_path is not None else None) or {}
            name = str(folder.relative_to(root)) if folder != root else folder.name
            found.append(CheckpointInfo(name, folder, str(config["kind"]), config, metrics,
                                        _folder_size(folder, root)))
    return sorted(found, key=lambda c: c.name)


def image_classifiers(roots: Roots) -> list[CheckpointInfo]:
    return list_checkpoints(roots, kind="classifier")


def language_models(roots: Roots) -> list[CheckpointInfo]:
    """Our LM checkpoints and Hugging Face model folders."""
    return list_checkpoints(roots, kind=("lm", "hf"))


@dataclasses.dataclass
class GraphInfo:
    """One saved attribution graph JSON under a circuits root."""

    name: str
    path: Path
    prompt: str
    n_nodes: int
    n_links: int
    model: str


@functools.lru_cache(maxsize=1024)
def _graph_info(path: Path, name: str, mtime_ns: int, size: int) -> GraphInfo | None:
    # Keyed by modification time and size: a graph rewritten in place is read again.
    data = _read_json_dict(path)
    if data is None or not isinstance(data.get("nodes"), list) or not isinstance(data.get("links"), list):
        return None
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return GraphInfo(name=name, path=path, prompt=str(metadata.get("prompt", "")),
                     n_nodes=len(data["nodes"]), n_links=len(data["links"]),
                     model=str(metadata.get("scan", metadata.get("model", ""))))


def list_graphs(roots: Roots) -> list[GraphInfo]:
    """Every JSON file under the circuits roots that is a graph (has `nodes` and `links`), skipping
    the per-feature JSON files that sit beside the graphs. Each file is parsed once per version.

    Only regular files that resolve inside their root are read: a symlink that leads out of the root,
    a pipe, a socket or a device named `*.json` is skipped without being opened."""
    found: list[GraphInfo] = []
    for root in roots.circuits:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.json")):
            if path.parent.name == "features":
                continue  # feature cards, not graphs (and there are many)
            resolved = regular_file_inside(path, root)
            if resolved is None:
                continue
            status = resolved.stat()
            info = _graph_info(resolved, str(path.relative_to(root)), status.st_mtime_ns, status.st_size)
            if info is not None:
                found.append(info)
    return found


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys (lists kept as short text), for a table."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            text = json.dumps(value)
            out[name] = text if len(text) <= 80 else text[:77] + "..."
        else:
            out[name] = value
    return out


HEADLINE_METRICS = ("test_accuracy", "n_params", "train_seconds", "ce_loss_recovered_all")


def checkpoint_table(checkpoints: Sequence[CheckpointInfo]) -> list[dict[str, Any]]:
    """One row per checkpoint: name, kind, arch, size, its headline metrics and each task's accuracy."""
    table = []
    for c in checkpoints:
        flat = flatten(c.metrics)
        row = {"name": c.name, "kind": c.kind, "arch": c.arch or "", "size (MB)": round(c.size_bytes / 1e6, 2)}
        row.update({key: flat[key] for key in HEADLINE_METRICS if key in flat})
        for task, values in task_metrics(c.metrics).items():
            if isinstance(values.get("accuracy"), (int, float)):
                row[f"{task} accuracy"] = values["accuracy"]
        table.append(row)
    return table


KIND_TITLES = {"classifier": "Image classifiers", "lm": "Language models", "hf": "Hugging Face models",
               "dictionaries": "Dictionaries (transcoders, attention SAEs)", "clt": "Cross-layer transcoders"}


def checkpoint_tables(checkpoints: Sequence[CheckpointInfo]) -> dict[str, list[dict[str, Any]]]:
    """`checkpoint_table` split by kind (in `KIND_TITLES` order, others after), each table with only the columns
    some checkpoint of that kind fills: one table of every kind would be mostly empty cells."""
    rows = checkpoint_table(checkpoints)
    tables: dict[str, list[dict[str, Any]]] = {}
    for c, row in zip(checkpoints, rows):
        tables.setdefault(c.kind, []).append(row)
    order = [k for k in KIND_TITLES if k in tables] + sorted(k for k in tables if k not in KIND_TITLES)
    out = {}
    for kind in order:
        columns = list(dict.fromkeys(key for row in tables[kind] for key in row if key != "kind"))
        out[kind] = [{key: row.get(key) for key in columns} for row in tables[kind]]
    return out


# ---- reading a graph JSON for display (our export or any circuit-tracer / Neuronpedia one) ------------

def node_links(data: Mapping[str, Any], node_id: str, k: int = 10) -> tuple[list[dict], list[dict]]:
    """The node's `k` strongest incoming and outgoing links by |weight|, as (incoming, outgoing)."""
    incoming = sorted((e for e in data["links"] if e["target"] == node_id), key=lambda e: -abs(e["weight"]))
    outgoing = sorted((e for e in data["links"] if e["source"] == node_id), key=lambda e: -abs(e["weight"]))
    return incoming[:k], outgoing[:k]


def link_rows(links: Sequence[Mapping[str, Any]], other: str, by_id: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """Links as table rows: the node at the `other` end ("source" or "target"), its type and label, the weight."""
    return [{other: e[other], "type": by_id.get(e[other], {}).get("feature_type", ""),
             "label": by_id.get(e[other], {}).get("clerp", ""), "weight": round(e["weight"], 4)} for e in links]


@dataclasses.dataclass(frozen=True)
class FeatureNode:
    """Where a dictionary-feature node of a graph lives: (kind "mlp"/"attn", layer, position, feature)."""

    kind: str
    layer: int
    pos: int
    feature: int


FEATURE_TYPES = {"cross layer transcoder": "mlp", "attention sae feature": "attn"}


def feature_node(node: Mapping[str, Any]) -> FeatureNode | None:
    """Where a graph node's feature lives, from its type and our ids `{layer}_{feature}_{pos}`
    (transcoder) / `A{layer}_{feature}_{pos}` (attention SAE); None for embeddings, errors, logits
    (whose ids can look alike, hence the type check) and ids in another convention."""
    kind = FEATURE_TYPES.get(str(node.get("feature_type")))
    if kind is None:
        return None
    parts = str(node["node_id"]).removeprefix("A").split("_")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    layer, feature, pos = map(int, parts)
    return FeatureNode(kind, layer, pos, feature)


def node_order(nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Node ids for picking one: dictionary features first, each group by influence (most influential
    first; nodes without one last)."""
    ordered = sorted(nodes, key=lambda n: (feature_node(n) is None,
                                           n.get("influence") if n.get("influence") is not None else 2.0))
    return [n["node_id"] for n in ordered]


def feature_file(graph_path: Path, data: Mapping[str, Any], node: Mapping[str, Any]) -> Path | None:
    """The feature JSON a saved graph points to for `node` (`<base url>/<feature>.json` beside the graph),
    if it exists. The caller still guards the path."""
    if node.get("feature") is None:
        return None
    base = (data.get("metadata", {}).get("feature_details") or {}).get("feature_json_base_url") or "features"
    if "://" in base:
        return None  # a web address: nothing to read locally
    path = graph_path.parent / base / f"{node['feature']}.json"
    return path if path.is_file() else None


def task_metrics(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An LM's held-out task metrics ({task: {"accuracy": …, …}}), wherever its metrics.json keeps
    them (`tasks` at the top, or under `eval`); empty for other checkpoints."""
    for holder in (metrics, metrics.get("eval") if isinstance(metrics.get("eval"), Mapping) else {}):
        tasks = holder.get("tasks")
        if isinstance(tasks, Mapping):
            return {str(k): dict(v) for k, v in tasks.items() if isinstance(v, Mapping)}
    return {}


def feature_cards(graph_path: Path, data: Mapping[str, Any], root: Path | None = None,
                  node_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The feature JSONs saved beside a graph, by node id, for its dictionary-feature nodes (or only
    `node_ids`); files missing, unreadable or (when `root` is given) outside `root` are skipped."""
    wanted = set(node_ids) if node_ids is not None else None
    cards: dict[str, dict[str, Any]] = {}
    read: dict[Path, dict[str, Any] | None] = {}
    for node in data["nodes"]:
        if feature_node(node) is None or (wanted is not None and node["node_id"] not in wanted):
            continue
        path = feature_file(graph_path, data, node)
        if path is None:
            continue
        if root is not None and regular_file_inside(path, root) is None:
            continue
        if path not in read:
            read[path] = _read_json_dict(path)
        if read[path] is not None:
            cards[node["node_id"]] = read[path]
    return cards


# ---- recipe summaries (what `interp extract --recipe` writes beside its graphs) ---------------------------

@dataclasses.dataclass
class RecipeSummary:
    """One recipe's `summary.json` under a circuits root, and the graphs it lists (by their listing name)."""

    name: str
    path: Path
    summary: dict[str, Any]
    graphs: list[tuple[str, str]]   # (graph name as in `list_graphs`, prompt)


def list_recipes(roots: Roots) -> list[RecipeSummary]:
    """Every `*/summary.json` holding a "recipe" under the circuits roots, sorted by name, with the graphs
    beside it (`<slug>.json` for each prompt it summarises)."""
    found = []
    for root in roots.circuits:
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*/summary.json")):
            resolved = regular_file_inside(path, root)
            summary = _read_json_dict(resolved) if resolved is not None else None
            if summary is None or "recipe" not in summary:
                continue
            graphs = []
            for p in summary.get("prompts") or []:
                if not isinstance(p, Mapping) or not p.get("slug"):
                    continue
                graph = path.parent / f"{p['slug']}.json"
                if regular_file_inside(graph, root) is not None:
                    graphs.append((str(graph.relative_to(root)), str(p.get("prompt", ""))))
            found.append(RecipeSummary(str(path.parent.relative_to(root)), path, summary, graphs))
    return sorted(found, key=lambda r: r.name)


RECIPE_MEASURES = (("top10_ablation_drop", "top-10 features"), ("top10_attribution_ablation_drop", "top-10 by attribution"),
                   ("top10_unsigned_ablation_drop", "top-10 unsigned"), ("random10_ablation_drop", "random 10 (control)"),
                   ("random10_same_positions_ablation_drop", "random 10 at the same positions (control)"),
                   ("random10_pruned_ablation_drop", "random 10 in the pruned graph (control)"))


def recipe_table(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The mean metric drop of each ablation (rows) in each recompute mode the summary holds (columns)."""
    modes = [(str(summary.get("ablation_mode") or "free"), summary)]
    modes += [(m, summary[m]) for m in ("constrained", "replacement") if isinstance(summary.get(m), Mapping)]
    rows = []
    for key, label in RECIPE_MEASURES:
        row: dict[str, Any] = {"ablation": label}
        for mode, values in modes:
            value = values.get(key)
            row[mode] = float(value) if isinstance(value, (int, float)) else None
        if any(v is not None for k, v in row.items() if k != "ablation"):
            rows.append(row)
    return rows


def recipe_prompt_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per prompt of a recipe summary: its prompt, target, clean metric and the drops of the top-10
    ablation and of the random control."""
    rows = []
    for p in summary.get("prompts") or []:
        if not isinstance(p, Mapping):
            continue
        rows.append({"graph": p.get("slug"), "prompt": p.get("prompt"), "target": p.get("target"),
                     "contrast": p.get("contrast"), "clean metric": p.get("metric_clean"),
                     "top-10 drop": p.get("top_drop"), "random-10 drop": p.get("random_drop")})
    return rows
