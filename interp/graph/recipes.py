"""The extraction pipeline (model folder → graph JSON) and recipes that run it over many prompts.

Python API:

    from interp.graph.recipes import load_setup, extract
    setup = load_setup("checkpoints/lm-bilinear")               # model + transcoders + attention SAEs
    result = extract(setup, "when Eva and Leo arrived at the lake , Leo handed a cup to", contrast=("Eva", "Leo"))
    result.scores.replacement_score, result.json["nodes"][:3]

A recipe (TOML) names a model, its dictionaries, the graph settings and prompts with their targets;
`run_recipe` extracts every prompt, writes one graph JSON each plus the feature JSONs, and checks
that the circuits are real: ablating the 10 most influential feature nodes should move the task
metric (logit of the target minus logit of the contrast) far more than ablating 10 random ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from interp.errors import InterpError
from interp.graph import DEFAULT_MAX_FEATURE_NODES
from interp.graph.attribution import AttributionGraph, attribute
from interp.graph.export import export_graph
from interp.graph.features import write_feature_jsons
from interp.graph.interventions import Intervention, intervene
from interp.graph.prune import Pruned, prune
from interp.graph.replacement import ReplacementModel
from interp.graph.scores import GraphScores, graph_scores
from interp.io import write_json
from interp.results import Result


@dataclass
class Setup:
    """A language model with its tokenizer and the replacement model built on its dictionaries."""

    replacement: ReplacementModel
    vocab: list[str]
    name: str
    tokenizer: Any = None

    def encode(self, prompt: str) -> torch.Tensor:
        if not prompt or not prompt.strip():
            raise InterpError("empty prompt: give at least one word")
        return self.replacement.check_tokens(torch.tensor(self.tokenizer.encode(prompt), dtype=torch.long))

    def token_id(self, word: str) -> int:
        return self.tokenizer.token_id(word)


def load_dictionary_folder(folder: str | Path, what: str) -> dict[int, Any]:
    """{layer: SAE} from a folder of SAE-Lens folders (adapter over `interp.models.dictionaries` when present)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InterpError(f"{what} folder not found: {folder}")
    from interp.models.clt import is_clt_folder, load_clt

    if is_clt_folder(folder):
        # A cross-layer transcoder: one view per layer, each writing its own and every later MLP output.
        return load_clt(folder).layers()
    try:
        from interp.models.dictionaries import load_dictionaries
    except ImportError:
        load_dictionaries = None
    if load_dictionaries is not None:
        return load_dictionaries(folder)
    from sae_lens import SAE

    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            sae = SAE.load_from_disk(str(sub))
        except Exception as e:  # noqa: BLE001 - any failure means the folder is not an SAE-Lens folder
            raise InterpError(f"cannot load the {what} in {sub} with SAE-Lens ({type(e).__name__}: {e})") from None
        hook = sae.cfg.metadata.get("hook_name") or ""
        parts = hook.split(".")
        if len(parts) < 2 or parts[0] != "blocks" or not parts[1].isdigit():
            raise InterpError(f"{sub} has no 'blocks.L....' hook_name in its metadata; cannot tell its layer")
        out[int(parts[1])] = sae
    if not out:
        raise InterpError(f"{what} folder {folder} holds no SAE-Lens folders")
    return out


def recorded_model(folder: str | Path) -> Path | None:
    """The model folder a dictionaries folder says it was made for, when it names one that exists here: our
    config.json's "model" (relative to the folder), else a path in the layers' SAE-Lens metadata `model_name`."""
    folder = Path(folder)
    config = folder / "config.json"
    if config.is_file():
        try:
            recorded = json.loads(config.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if isinstance(recorded, str) and recorded and (folder / recorded).exists():
            return (folder / recorded).resolve()
    for cfg in sorted(folder.glob("*/cfg.json")) + sorted(folder.glob("cfg.json")):
        try:
            name = (json.loads(cfg.read_text(encoding="utf-8")).get("metadata") or {}).get("model_name")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(name, str) and name and Path(name).exists():
            return Path(name).resolve()
    return None


def check_made_for(folder: str | Path, model_dir: str | Path, what: str) -> None:
    """InterpError (one line) when `folder`'s dictionaries record another model than `model_dir`."""
    recorded = recorded_model(folder)
    if recorded is not None and recorded != Path(model_dir).resolve():
        raise InterpError(f"the {what} in {folder} were made for {recorded}, not {model_dir}; "
                          "pass --allow-mismatch to use them anyway")


def load_setup(model_dir: str | Path, transcoders: str | Path | None = None, attn_saes: str | Path | None = None,
               mode: str = "full", device: str = "cpu", dtype: torch.dtype | None = None,
               allow_mismatch: bool = False) -> Setup:
    """The model and its dictionaries (default: MODEL/transcoders and MODEL/attn-saes), checked to belong together:
    widths and hooks always; the model the dictionaries record, unless `allow_mismatch`."""
    from interp.models.lm import load_lm

    model_dir = Path(model_dir)
    if not allow_mismatch:
        check_made_for(transcoders or model_dir / "transcoders", model_dir, "transcoders")
        if mode == "full":
            check_made_for(attn_saes or model_dir / "attn-saes", model_dir, "attention SAEs")
    # TransformerLens prints "Moving model to device" on stdout; keep stdout for the one JSON object
    # and stderr for the one error line.
    with contextlib.redirect_stdout(io.StringIO()):
        lm = load_lm(model_dir, device=device, dtype=dtype)
    tcs = load_dictionary_folder(transcoders or model_dir / "transcoders", "transcoders")
    saes = load_dictionary_folder(attn_saes or model_dir / "attn-saes", "attention SAEs") if mode == "full" else None
    for sae in list(tcs.values()) + list((saes or {}).values()):
        sae.to(device=lm.model.W_E.device, dtype=lm.model.W_E.dtype)
    rep = ReplacementModel.build(lm.model, tcs, saes, mode=mode)
    return Setup(replacement=rep, vocab=list(lm.tokenizer.vocab), name=model_dir.name, tokenizer=lm.tokenizer)


@dataclass
class Extraction:
    graph: AttributionGraph
    pruned: Pruned
    scores: GraphScores
    json: dict[str, Any]
    attribution_seconds: float = 0.0


def extract(setup: Setup, prompt: str, target: str | None = None, contrast: tuple[str, str] | None = None,
            node_threshold: float = 0.8, edge_threshold: float = 0.98,
            max_feature_nodes: int | None = DEFAULT_MAX_FEATURE_NODES, batch_size: int = 64, slug: str = "graph",
            feature_json_base_url: str = "features", progress: bool = False, pruning: str = "influence",
            hierarchical_threshold: float = 0.01, max_memory: int | None = None) -> Extraction:
    """Prompt → attribution graph → pruned graph → scores → graph JSON.

    `pruning` is "influence" (circuit-tracer's node/edge thresholds) or "hierarchical" (Ge et al.:
    nodes whose attribution is below `hierarchical_threshold` × |target| are cut off).
    `max_feature_nodes` caps the feature nodes (None: every active feature, if `max_memory` allows)."""
    tokens = setup.encode(prompt)
    target_id = setup.token_id(target) if target is not None else None
    contrast_ids = (setup.token_id(contrast[0]), setup.token_id(contrast[1])) if contrast else None
    strings = [setup.vocab[t] for t in tokens.tolist()]
    start = time.perf_counter()
    graph = attribute(setup.replacement, tokens, prompt=prompt, token_strings=strings, vocab=setup.vocab,
                      target=target_id, contrast=contrast_ids, max_feature_nodes=max_feature_nodes,
                      batch_size=batch_size, progress=progress, model_name=setup.name, max_memory=max_memory)
    seconds = time.perf_counter() - start
    if pruning == "influence":
        pruned = prune(graph, node_threshold, edge_threshold)
    elif pruning == "hierarchical":
        from interp.graph.prune import hierarchical_attribution

        pruned = hierarchical_attribution(graph, hierarchical_threshold)
        pruned.influence = prune(graph, 1.0, 1.0).influence   # rank ablations by influence either way
    else:
        raise InterpError(f"unknown pruning {pruning!r}; choose influence or hierarchical")
    scores = graph_scores(graph)
    pruned_adj = graph.adjacency * pruned.edge_mask
    pruned_scores = graph_scores(graph, pruned_adj)
    data = export_graph(graph, pruned, slug=slug, scan=setup.name, node_threshold=node_threshold,
                        edge_threshold=edge_threshold, feature_json_base_url=feature_json_base_url,
                        scores={"replacement_score": scores.replacement_score,
                                "completeness_score": scores.completeness_score,
                                "pruned_replacement_score": pruned_scores.replacement_score,
                                "pruned_completeness_score": pruned_scores.completeness_score})
    return Extraction(graph, pruned, scores, data, seconds)


def task_metric(logits: torch.Tensor, target: int, contrast: int) -> float:
    return float(logits[target] - logits[contrast])


def ablation_drops(setup: Setup, extraction: Extraction, target: int, contrast: int, k: int = 10,
                   seed: int = 0, mode: str = "free", n_random: int = 5) -> dict[str, float]:
    """The task metric after zeroing k feature nodes (errors held at their clean values), for:

    - "top": the k features of highest influence that support the target: circuit-tracer's
      (unsigned) influence, among features whose signed total attribution to the metric
      (`a_s · ∂metric/∂a_s` through the linear graph) is positive;
    - "unsigned": the k features of highest influence whatever their sign;
    - "attribution": the k features of largest positive signed attribution;
    - "random": k random active feature nodes of the graph, the metric averaged over `n_random`
      independent draws (one draw of 10 is a noisy estimate of what a random ablation costs);
    - "random_same_positions": for each of the "top" features, a random other active feature at the
      same position (the top features crowd the last positions, where any ablation costs more);
    - "random_pruned": k random feature nodes of the pruned graph.
    Random controls average `n_random` draws. Each is measured with the recipe's mode (suffix ""),
    and as "*_constrained" and "*_replacement" (see `interp.graph.interventions`).
    """
    from interp.graph.prune import hierarchical_attribution

    graph, pruned = extraction.graph, extraction.pruned
    tokens = torch.tensor(graph.tokens)
    features = list(range(graph.n_features))
    signed = hierarchical_attribution(graph, threshold=0.0).influence
    by_influence = sorted(features, key=lambda j: -float(pruned.influence[j]))
    top = [j for j in by_influence if signed[j] > 0][:k]
    unsigned = by_influence[:k]
    attribution = sorted((j for j in features if signed[j] > 0), key=lambda j: -float(signed[j]))[:k]
    rng = random.Random(seed)
    random_sets = [rng.sample(features, min(k, len(features))) for _ in range(n_random)]
    at_position: dict[int, list[int]] = {}
    for j in features:
        at_position.setdefault(graph.nodes[j].pos, []).append(j)
    same_position_sets = []
    for _ in range(n_random):
        chosen: list[int] = []
        for j in top:
            others = [o for o in at_position[graph.nodes[j].pos] if o not in top and o not in chosen]
            if others:
                chosen.append(rng.choice(others))
        same_position_sets.append(chosen)
    in_pruned = [j for j in features if bool(pruned.node_mask[j])]
    pruned_sets = [rng.sample(in_pruned, min(k, len(in_pruned))) for _ in range(n_random)]

    def ablate(nodes: list[int], how: str) -> float:
        ivs = [Intervention(graph.nodes[j].kind, graph.nodes[j].layer, graph.nodes[j].pos, graph.nodes[j].index, 0.0)
               for j in nodes]
        return task_metric(intervene(setup.replacement, tokens, ivs, mode=how).new_logits, target, contrast)

    clean = task_metric(setup.replacement.snapshot(tokens).logits[-1], target, contrast)
    out = {"metric_clean": clean}
    scale = clean if abs(clean) > 1e-8 else 1e-8
    modes = [(mode, "")] + [(m, f"_{m}") for m in ("constrained", "replacement") if m != mode]
    for name, node_sets in (("top", [top]), ("unsigned", [unsigned]), ("attribution", [attribution]),
                            ("random", random_sets), ("random_same_positions", same_position_sets),
                            ("random_pruned", pruned_sets)):
        for how, suffix in modes:
            out[f"metric_{name}{suffix}"] = sum(ablate(nodes, how) for nodes in node_sets) / len(node_sets)
            out[f"{name}_drop{suffix}"] = (clean - out[f"metric_{name}{suffix}"]) / scale
    return out


# ---------------------------------------------------------------- recipes

RECIPE_KEYS = {"name": str, "description": str, "model": str, "transcoders": str, "attn_saes": str, "mode": str,
               "node_threshold": (int, float), "edge_threshold": (int, float), "max_feature_nodes": int,
               "batch_size": int, "seed": int, "ablation_mode": str, "corpus": dict, "prompts": list}


@dataclass
class Recipe:
    name: str
    model: Path
    prompts: list[dict[str, str]]
    transcoders: Path | None = None
    attn_saes: Path | None = None
    mode: str = "full"
    node_threshold: float = 0.8
    edge_threshold: float = 0.98
    max_feature_nodes: int | None = DEFAULT_MAX_FEATURE_NODES
    batch_size: int = 64
    seed: int = 0
    ablation_mode: str = "free"
    corpus: dict[str, int] = field(default_factory=lambda: {"n_sequences": 128, "seed": 12345})
    description: str = ""


def _resolve(path: str, recipe_file: Path) -> Path:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    for base in (recipe_file.parent, recipe_file.parent.parent):
        if (base / p).exists():
            return base / p
    return p


def read_recipe(path: str | Path) -> Recipe:
    """Parse and check a recipe TOML; InterpError (one line) on anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise InterpError(f"recipe not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"recipe {path} is not valid TOML ({str(e).splitlines()[0]})") from None
    for key in ("name", "model", "prompts"):
        if key not in data:
            raise InterpError(f"recipe {path} has no {key!r}; a recipe needs name, model and [[prompts]]")
    for key, value in data.items():
        if key not in RECIPE_KEYS:
            raise InterpError(f"recipe {path} has an unknown key {key!r}; allowed: {', '.join(RECIPE_KEYS)}")
        if not isinstance(value, RECIPE_KEYS[key]) or isinstance(value, bool):
            raise InterpError(f"recipe {path}: {key!r} has the wrong type ({type(value).__name__})")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", data["name"]) or ".." in data["name"]:
        # The name becomes output file names ({name}-00.json): a path in it would write outside --out-dir.
        raise InterpError(f"recipe {path}: name {data['name']!r} must be a plain file name (letters, digits, _ . -)")
    for key in ("max_feature_nodes", "batch_size"):
        if key in data and data[key] < (0 if key == "max_feature_nodes" else 1):
            raise InterpError(f"recipe {path}: {key} must be {'≥ 0' if key == 'max_feature_nodes' else '≥ 1'}")
    prompts = data["prompts"]
    if not prompts:
        raise InterpError(f"recipe {path} has no prompts")
    for i, p in enumerate(prompts):
        if not isinstance(p, dict) or not isinstance(p.get("prompt"), str):
            raise InterpError(f"recipe {path}: prompt {i} needs a 'prompt' string")
        if not isinstance(p.get("target"), str) or not isinstance(p.get("contrast"), str):
            raise InterpError(f"recipe {path}: prompt {i} needs 'target' and 'contrast' words (the task metric is "
                              "logit(target) - logit(contrast))")
    for key in ("node_threshold", "edge_threshold"):
        if key in data and not 0.0 <= data[key] <= 1.0:
            raise InterpError(f"recipe {path}: {key} must lie in [0, 1]")
    from interp.graph.interventions import MODES as ABLATION_MODES

    if data.get("ablation_mode", "free") not in ABLATION_MODES:
        raise InterpError(f"recipe {path}: ablation_mode must be one of {', '.join(ABLATION_MODES)}")
    fields = {k: v for k, v in data.items() if k not in ("model", "transcoders", "attn_saes")}
    return Recipe(model=_resolve(data["model"], path),
                  transcoders=_resolve(data["transcoders"], path) if "transcoders" in data else None,
                  attn_saes=_resolve(data["attn_saes"], path) if "attn_saes" in data else None, **fields)


@dataclass
class RecipeSummary(Result):
    recipe: str
    n_prompts: int
    top10_ablation_drop: float
    random10_ablation_drop: float
    top10_unsigned_ablation_drop: float
    top10_attribution_ablation_drop: float
    random10_same_positions_ablation_drop: float
    random10_pruned_ablation_drop: float
    constrained: dict[str, float]
    replacement: dict[str, float]
    ablation_mode: str
    metric_clean: float
    replacement_score: float
    completeness_score: float
    out_dir: str
    prompts: list[dict[str, Any]]


def run_recipe(recipe_path: str | Path, out_dir: str | Path, progress: bool = True, device: str = "cpu",
               dtype: torch.dtype | None = None) -> RecipeSummary:
    from interp.data.corpus import training_tokens

    recipe = read_recipe(recipe_path)
    setup = load_setup(recipe.model, recipe.transcoders, recipe.attn_saes, recipe.mode, device, dtype)
    # Check every prompt before writing anything.
    for p in recipe.prompts:
        setup.encode(p["prompt"]), setup.token_id(p["target"]), setup.token_id(p["contrast"])
    out_dir = Path(out_dir)
    rows, features = [], set()
    for i, p in enumerate(tqdm(recipe.prompts, desc=f"recipe {recipe.name}", disable=not progress)):
        slug = f"{recipe.name}-{i:02d}"
        ex = extract(setup, p["prompt"], contrast=(p["target"], p["contrast"]), node_threshold=recipe.node_threshold,
                     edge_threshold=recipe.edge_threshold, max_feature_nodes=recipe.max_feature_nodes or None,
                     batch_size=recipe.batch_size, slug=slug, feature_json_base_url="features")
        drops = ablation_drops(setup, ex, setup.token_id(p["target"]), setup.token_id(p["contrast"]),
                               seed=recipe.seed + i, mode=recipe.ablation_mode)
        write_json(out_dir / f"{slug}.json", ex.json)
        for j in ex.pruned.node_mask[:ex.graph.n_features].nonzero().flatten().tolist():
            n = ex.graph.nodes[j]
            features.add((n.kind, n.layer, n.index))
        rows.append({"slug": slug, "prompt": p["prompt"], "target": p["target"], "contrast": p["contrast"],
                     **drops, "replacement_score": ex.scores.replacement_score,
                     "completeness_score": ex.scores.completeness_score,
                     "n_nodes": len(ex.json["nodes"]), "n_links": len(ex.json["links"])})
    corpus = torch.tensor(training_tokens(setup.tokenizer, recipe.corpus.get("n_sequences", 128),
                                          setup.replacement.model.cfg.n_ctx, recipe.corpus.get("seed", 12345)))
    write_feature_jsons(setup.replacement, features, corpus, setup.vocab, out_dir / "features", progress=progress)

    def mean(key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    def pooled_drop(name: str) -> float:
        # 1 - mean ablated metric / mean clean metric: stable where one prompt's clean metric is near 0.
        return 1.0 - mean(f"metric_{name}") / mean("metric_clean")

    names = {"top10_ablation_drop": "top", "random10_ablation_drop": "random",
             "top10_unsigned_ablation_drop": "unsigned", "top10_attribution_ablation_drop": "attribution",
             "random10_same_positions_ablation_drop": "random_same_positions",
             "random10_pruned_ablation_drop": "random_pruned"}

    def in_mode(suffix: str) -> dict[str, float]:
        return {field: pooled_drop(name + suffix) for field, name in names.items()}

    other = {m: in_mode(f"_{m}") if m != recipe.ablation_mode else in_mode("") for m in ("constrained", "replacement")}
    summary = RecipeSummary(recipe=recipe.name, n_prompts=len(rows), **in_mode(""), **other,
                            ablation_mode=recipe.ablation_mode,
                            metric_clean=mean("metric_clean"),
                            replacement_score=mean("replacement_score"),
                            completeness_score=mean("completeness_score"), out_dir=str(out_dir), prompts=rows)
    write_json(out_dir / "summary.json", summary.to_dict())
    return summary


def write_task_recipe(task: str, model_dir: str | Path, out_path: str | Path, n_prompts: int = 8,
                      mode: str = "full", only_correct: bool = True) -> Path:
    """A recipe for one planted task: the first `n_prompts` held-out examples (by default those the model
    gets right, i.e. whose top prediction is the target, as the task accuracies count it: a circuit
    should explain a behaviour the model has) with target and contrast."""
    from interp.data.corpus import task_examples

    setup = load_setup(model_dir, mode=mode)
    chosen = []
    for ex in task_examples(task, n=200):
        tokens = setup.encode(ex.prompt)
        logits = setup.replacement.snapshot(tokens).logits[-1]
        if not only_correct or int(logits.argmax()) == setup.token_id(ex.target):
            chosen.append(ex)
        if len(chosen) == n_prompts:
            break
    model_dir = Path(model_dir)

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"# Circuit recipe for the {task} task: run with `interp extract --recipe circuits/{Path(out_path).name} "
             f"--out-dir circuits/{task}`.",
             f"# Prompts: the first {n_prompts} held-out {task} examples whose top prediction is the target "
             "(interp.data.corpus.task_examples); the task metric is logit(target) - logit(contrast).",
             f"name = {q(task)}", f"description = {q(f'{task} circuit on {model_dir.name}')}",
             f"model = {q(model_dir.as_posix())}", f"transcoders = {q((model_dir / 'transcoders').as_posix())}",
             f"attn_saes = {q((model_dir / 'attn-saes').as_posix())}", f"mode = {q(mode)}",
             "node_threshold = 0.8", "edge_threshold = 0.98", "batch_size = 128", "seed = 0",
             'ablation_mode = "free"', "", "[corpus]", "n_sequences = 256", "seed = 12345", ""]
    for ex in chosen:
        lines += ["[[prompts]]", f"prompt = {q(ex.prompt)}", f"target = {q(ex.target)}",
                  f"contrast = {q(ex.contrast)}", ""]
    from interp.io import atomic_write_text

    atomic_write_text(out_path, "\n".join(lines))
    return Path(out_path)
