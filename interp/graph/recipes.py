"""Recipes: a TOML file naming a model, its dictionaries, graph settings and prompts with their targets.

`run_recipe` extracts every prompt (`interp.graph.pipeline.extract`), writes one graph JSON each plus
the feature JSONs, and checks that the circuits are real (`interp.graph.ablation.ablation_drops`):
ablating the 10 most influential feature nodes should move the task metric (logit of the target
minus logit of the contrast) far more than ablating random ones.

    interp extract --recipe circuits/ioi.toml --out-dir circuits/ioi --json
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from interp.errors import InterpError
from interp.graph import (
    DEFAULT_MAX_FEATURE_NODES,
    FEATURE_CORPUS_SEED,
    FEATURE_CORPUS_SEQUENCES,
)
from interp.graph.ablation import ablation_drops
from interp.graph.features import corpus_windows, write_feature_jsons
from interp.graph.pipeline import extract
from interp.graph.setup import load_setup
from interp.io import write_json
from interp.results import Result

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
    corpus: dict[str, int] = field(default_factory=lambda: {"n_sequences": FEATURE_CORPUS_SEQUENCES,
                                                            "seed": FEATURE_CORPUS_SEED})
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
    corpus = corpus_windows(setup, recipe.corpus.get("n_sequences", FEATURE_CORPUS_SEQUENCES),
                            recipe.corpus.get("seed", FEATURE_CORPUS_SEED))
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
                      mode: str = "full", only_correct: bool = True, skip: int = 0, name: str | None = None) -> Path:
    """A recipe for one planted task: the first `n_prompts` held-out examples (by default those the model
    gets right, i.e. whose top prediction is the target, as the task accuracies count it: a circuit
    should explain a behaviour the model has) with target and contrast, after the first `skip` of them
    (`skip=8` gives a second prompt set that the first recipe does not contain)."""
    from interp.data.corpus import task_examples

    setup = load_setup(model_dir, mode=mode)
    chosen = []
    for ex in task_examples(task, n=200):
        tokens = setup.encode(ex.prompt)
        logits = setup.replacement.snapshot(tokens).logits[-1]
        if not only_correct or int(logits.argmax()) == setup.token_id(ex.target):
            chosen.append(ex)
        if len(chosen) == skip + n_prompts:
            break
    chosen = chosen[skip:]
    name = name or task
    model_dir = Path(model_dir)

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    which = f"examples {skip + 1}–{skip + n_prompts}" if skip else f"the first {n_prompts}"
    lines = [f"# Circuit recipe for the {task} task: run with `interp extract --recipe circuits/{Path(out_path).name} "
             f"--out-dir circuits/{name}`.",
             f"# Prompts: {which} of the held-out {task} examples whose top prediction is the target "
             "(interp.data.corpus.task_examples); the task metric is logit(target) - logit(contrast).",
             f"name = {q(name)}", f"description = {q(f'{task} circuit on {model_dir.name}')}",
             f"model = {q(model_dir.as_posix())}", f"transcoders = {q((model_dir / 'transcoders').as_posix())}",
             f"attn_saes = {q((model_dir / 'attn-saes').as_posix())}", f"mode = {q(mode)}",
             "node_threshold = 0.8", "edge_threshold = 0.98", "batch_size = 128", "seed = 0",
             'ablation_mode = "free"', "", "[corpus]", "n_sequences = 256", f"seed = {FEATURE_CORPUS_SEED}", ""]
    for ex in chosen:
        lines += ["[[prompts]]", f"prompt = {q(ex.prompt)}", f"target = {q(ex.target)}",
                  f"contrast = {q(ex.contrast)}", ""]
    from interp.io import atomic_write_text

    atomic_write_text(out_path, "\n".join(lines))
    return Path(out_path)
