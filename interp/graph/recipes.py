"""Recipes: a TOML file naming a model, its dictionaries, graph settings and prompts with their targets.

`run_recipe` extracts every prompt (`interp.graph.pipeline.extract`), writes one graph JSON each plus
the feature JSONs, and checks that the circuits are real (`interp.graph.ablation.ablation_drops`):
ablating the 10 most influential feature nodes should move the task metric (logit of the target
minus logit of the contrast) far more than ablating random ones.

    interp extract --recipe circuits/ioi.toml --out-dir circuits/ioi --json
"""

from __future__ import annotations

import json
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
from interp.graph.features import corpus_windows, feature_cards
from interp.graph.pipeline import extract
from interp.graph.setup import load_setup
from interp.io import read_json, write_json
from interp.results import Result

RECIPE_KEYS = {"name": str, "description": str, "model": str, "transcoders": str, "attn_saes": str, "graph_mode": str,
               "node_threshold": (int, float), "edge_threshold": (int, float), "max_feature_nodes": int,
               "batch_size": int, "seed": int, "ablation_mode": str, "corpus": dict, "prompts": list}


@dataclass
class Recipe:
    name: str
    model: Path
    prompts: list[dict[str, str]]
    transcoders: Path | None = None
    attn_saes: Path | None = None
    graph_mode: str = "full"
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
    if "mode" in data:
        # the key was renamed with the command line's flag (--mode became --graph-mode)
        raise InterpError(f"recipe {path}: the key 'mode' is now 'graph_mode' (graph_mode = {data['mode']!r})")
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
    from interp.graph.replacement import MODES as GRAPH_MODES

    if data.get("graph_mode", "full") not in GRAPH_MODES:
        raise InterpError(f"recipe {path}: graph_mode must be one of {', '.join(GRAPH_MODES)}")

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


@dataclass
class PromptResult:
    """One prompt of a recipe: its graph JSON, its summary row and the feature nodes its pruned graph keeps."""
    slug: str
    graph: dict[str, Any]
    row: dict[str, Any]
    features: list[tuple[str, int, int]]


def recipe_prompt(setup: Any, recipe: Recipe, i: int) -> PromptResult:
    """Prompt i of `recipe`: extract its graph and measure the ablation drops (seed `recipe.seed + i`)."""
    p = recipe.prompts[i]
    slug = f"{recipe.name}-{i:02d}"
    ex = extract(setup, p["prompt"], contrast=(p["target"], p["contrast"]), node_threshold=recipe.node_threshold,
                 edge_threshold=recipe.edge_threshold, max_feature_nodes=recipe.max_feature_nodes or None,
                 batch_size=recipe.batch_size, slug=slug, feature_json_base_url="features")
    drops = ablation_drops(setup, ex, setup.token_id(p["target"]), setup.token_id(p["contrast"]),
                           seed=recipe.seed + i, mode=recipe.ablation_mode)
    features = sorted({(n.kind, n.layer, n.index) for j, n in enumerate(ex.graph.nodes[:ex.graph.n_features])
                       if ex.pruned.node_mask[j]})
    row = {"slug": slug, "prompt": p["prompt"], "target": p["target"], "contrast": p["contrast"],
           **drops, "replacement_score": ex.scores.replacement_score,
           "completeness_score": ex.scores.completeness_score,
           "n_nodes": len(ex.json["nodes"]), "n_links": len(ex.json["links"])}
    return PromptResult(slug, ex.json, row, features)


class RecipeWorker:
    """Loads a recipe's model and dictionaries once, then runs its prompts (`run`) and feature cards (`cards`):
    in this process, or as a Ray actor (`interp.jobs.WorkerPool`)."""

    def __init__(self, recipe: Recipe, device: str = "cpu", dtype: torch.dtype | None = None,
                 threads: int | None = None):
        if threads is not None:
            torch.set_num_threads(threads)
        self.recipe = recipe
        self.setup = load_setup(recipe.model, recipe.transcoders, recipe.attn_saes, recipe.graph_mode, device, dtype)

    def check(self, _: Any = None) -> None:
        """InterpError (one line) on a prompt, target or contrast the model cannot take."""
        for p in self.recipe.prompts:
            self.setup.encode(p["prompt"]), self.setup.token_id(p["target"]), self.setup.token_id(p["contrast"])

    def run(self, i: int) -> PromptResult:
        return recipe_prompt(self.setup, self.recipe, i)

    def cards(self, features: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
        corpus = corpus_windows(self.setup, self.recipe.corpus.get("n_sequences", FEATURE_CORPUS_SEQUENCES),
                                self.recipe.corpus.get("seed", FEATURE_CORPUS_SEED))
        return feature_cards(self.setup.replacement, set(features), corpus, self.setup.vocab)


def recipe_manifest(recipe_path: str | Path, recipe: Recipe, device: str, dtype: torch.dtype | None) -> dict[str, Any]:
    """What makes two runs the same job: the recipe's bytes, the weights it names (`recipe`, as read from
    `recipe_path`), device and dtype (not where it ran)."""
    from interp.jobs import file_digest, weights_digest

    return {"job": "extract --recipe", "recipe": Path(recipe_path).name, "recipe_sha256": file_digest(recipe_path),
            "weights_sha256": weights_digest(recipe.model, recipe.transcoders, recipe.attn_saes),
            "device": device, "dtype": str(dtype) if dtype is not None else None}


def _finished(out_dir: Path, slug: str) -> PromptResult | None:
    """A prompt finished by an earlier run: its graph validates and its record is whole; else None."""
    from interp.graph.export import read_graph_json
    from interp.jobs import MANIFEST_DIR

    record = out_dir / MANIFEST_DIR / "prompts" / f"{slug}.json"
    try:
        graph = read_graph_json(out_dir / f"{slug}.json")
        data = json.loads(record.read_text(encoding="utf-8"))
        return PromptResult(slug, graph, data["row"], [tuple(f) for f in data["features"]])
    except (InterpError, OSError, ValueError, KeyError, TypeError):
        return None


def run_recipe(recipe_path: str | Path, out_dir: str | Path, progress: bool = True, device: str = "cpu",
               dtype: torch.dtype | None = None, ray: str | None = None, workers: int | None = None,
               force: bool = False) -> RecipeSummary:
    """Every prompt of the recipe (`recipe_prompt`), one graph JSON each, feature cards and summary.json.

    With `ray` (an address, or `interp.jobs.LOCAL`) each prompt is one task on Ray actors that load the model
    once each; the files are the same bytes as without. A rerun into the same folder (the manifest in
    `out_dir/.interp-job/` says the same recipe) skips the prompts whose graph and record are whole."""
    from interp.jobs import MANIFEST_DIR, WorkerPool, check_job_folder, replace_earlier_job, write_manifest

    recipe = read_recipe(recipe_path)
    out_dir = Path(out_dir)
    manifest = recipe_manifest(recipe_path, recipe, device, dtype)
    resume = check_job_folder(out_dir, manifest, force)
    results: dict[int, PromptResult] = {}
    if resume:
        for i in range(len(recipe.prompts)):
            done = _finished(out_dir, f"{recipe.name}-{i:02d}")
            if done is not None:
                results[i] = done
    todo = [i for i in range(len(recipe.prompts)) if i not in results]
    threads = 1 if ray is not None else None
    with WorkerPool(RecipeWorker, (recipe, device, dtype, threads), ray=ray, n_workers=workers) as pool:
        list(pool.map("check", [None]))         # every prompt, before anything is written
        if not resume:
            replace_earlier_job(out_dir)
        write_manifest(out_dir, manifest)
        bar = tqdm(total=len(recipe.prompts), initial=len(results), desc=f"recipe {recipe.name}",
                   disable=not progress)
        for i, res in pool.map("run", todo):
            write_json(out_dir / f"{res.slug}.json", res.graph)
            write_json(out_dir / MANIFEST_DIR / "prompts" / f"{res.slug}.json",
                       {"row": res.row, "features": [list(f) for f in res.features]})
            results[i] = res
            bar.update(1)
        bar.close()
        features = sorted({f for res in results.values() for f in res.features})
        [(_, cards)] = list(pool.map("cards", [features]))
    for card in cards:
        write_json(out_dir / "features" / f"{card['index']}.json", card)
    rows = [results[i].row for i in range(len(recipe.prompts))]

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
                      graph_mode: str = "full", only_correct: bool = True, skip: int = 0,
                      name: str | None = None) -> Path:
    """A recipe for one planted task: the first `n_prompts` held-out examples (by default those the model
    gets right, i.e. whose top prediction is the target, as the task accuracies count it: a circuit
    should explain a behaviour the model has) with target and contrast, after the first `skip` of them
    (`skip=8` gives a second prompt set that the first recipe does not contain)."""
    from interp.data.corpus import corpus_config_from_options, task_examples

    setup = load_setup(model_dir, mode=graph_mode)
    # A model of the structural corpus gets the structural held-out sets (unmarked repeats, unseen IOI frames,
    # brackets at its trained depth); a planted-corpus model the planted ones.
    config = corpus_config_from_options(read_json(Path(model_dir) / "config.json", "model config").get("train_options"))
    chosen = []
    for ex in task_examples(task, n=200, config=config):
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
    held_out = "structural held-out" if config.kind == "structural" else "held-out"
    lines = [f"# Circuit recipe for the {task} task: run with `interp extract --recipe circuits/{Path(out_path).name} "
             f"--out-dir circuits/{name}`.",
             f"# Prompts: {which} of the {held_out} {task} examples whose top prediction is the target "
             "(interp.data.corpus.task_examples); the task metric is logit(target) - logit(contrast).",
             f"name = {q(name)}", f"description = {q(f'{task} circuit on {model_dir.name}')}",
             f"model = {q(model_dir.as_posix())}", f"transcoders = {q((model_dir / 'transcoders').as_posix())}",
             f"attn_saes = {q((model_dir / 'attn-saes').as_posix())}", f"graph_mode = {q(graph_mode)}",
             "node_threshold = 0.8", "edge_threshold = 0.98", "batch_size = 128", "seed = 0",
             'ablation_mode = "free"', "", "[corpus]", "n_sequences = 256", f"seed = {FEATURE_CORPUS_SEED}", ""]
    for ex in chosen:
        lines += ["[[prompts]]", f"prompt = {q(ex.prompt)}", f"target = {q(ex.target)}",
                  f"contrast = {q(ex.contrast)}", ""]
    from interp.io import atomic_write_text

    atomic_write_text(out_path, "\n".join(lines))
    return Path(out_path)
