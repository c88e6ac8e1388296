"""Feature JSON: what a graph viewer shows for one feature (circuit-tracer's feature file format).

For each feature: its top activating contexts from a corpus (the whole context with the activation
at every token), the tokens its decoder promotes and suppresses most through the unembedding
(`W_dec[f] @ W_U`, top and bottom logits), a histogram of its nonzero activations, a few quantiles
and its density (fraction of corpus tokens where it is active).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from interp.errors import InterpError
from interp.graph.export import global_feature_index
from interp.graph.replacement import ReplacementModel
from interp.io import write_json

N_EXAMPLES = 10
N_LOGITS = 10
N_BINS = 20


def feature_activations(replacement: ReplacementModel, corpus: torch.Tensor, wanted: dict[int, list[int]],
                        batch_size: int = 32, progress: bool = False) -> dict[int, torch.Tensor]:
    """Activations of the wanted features {site index: [feature, ...]} over `corpus` [n, ctx] → [n, ctx, k]."""
    sites = replacement.sites
    hooks = {sites[i].read_hook for i in wanted}
    out: dict[int, list[torch.Tensor]] = {i: [] for i in wanted}
    for start in tqdm(range(0, len(corpus), batch_size), desc="feature activations", disable=not progress,
                      leave=False):
        with torch.no_grad():
            _, cache = replacement.model.run_with_cache(corpus[start:start + batch_size],
                                                        names_filter=lambda n: n in hooks)
            for i, features in wanted.items():
                out[i].append(sites[i].encode(cache[sites[i].read_hook])[..., features])
    return {i: torch.cat(chunks) for i, chunks in out.items()}


def example_entry(acts: torch.Tensor, tokens: list[int], vocab: list[str]) -> dict[str, Any]:
    """One top-activation context of a feature card: the activation at every token of the window."""
    return {"tokens_acts_list": [round(a, 4) for a in acts.tolist()], "train_token_ind": int(acts.argmax()),
            "is_repeated_datapoint": False, "tokens": [vocab[t] for t in tokens]}


def logit_lists(replacement: ReplacementModel, site_index: int, feature: int,
                vocab: list[str]) -> tuple[list[str], list[str]]:
    """The tokens a feature's decoder promotes and suppresses most through the unembedding (`W_dec[f] @ W_U`)."""
    with torch.no_grad():
        # What the feature writes, summed over every output it writes (one for a per-layer dictionary).
        # An exact site (graph mode bilinear-exact) has no fixed decoder in `writers`: its prompt-free one.
        site = replacement.sites[site_index]
        written = sum((site.W_dec if w is None else w)[feature]
                      for j, writers in enumerate(replacement.writers) for i, w in writers if i == site_index)
        logit_effect = written @ replacement.model.W_U
    top = logit_effect.topk(min(N_LOGITS, len(vocab))).indices.tolist()
    bottom = (-logit_effect).topk(min(N_LOGITS, len(vocab))).indices.tolist()
    return [vocab[t] for t in top], [vocab[t] for t in bottom]


def feature_json(replacement: ReplacementModel, site_index: int, feature: int, acts: torch.Tensor,
                 corpus: torch.Tensor, vocab: list[str]) -> dict[str, Any]:
    """One feature's JSON from its activations `acts` [n, ctx] over `corpus` [n, ctx]."""
    site = replacement.sites[site_index]
    model = replacement.model
    n_layers = model.cfg.n_layers
    index = global_feature_index(site.kind, site.layer, feature, n_layers, site.d_sae)
    per_context = acts.max(dim=1).values
    order = per_context.argsort(descending=True)[:N_EXAMPLES]
    examples = []
    for k in order.tolist():
        if per_context[k] <= 0:
            break
        examples.append(example_entry(acts[k], corpus[k].tolist(), vocab))
    top, bottom = logit_lists(replacement, site_index, feature, vocab)
    active = acts[acts > 0].double()
    if active.numel():
        histogram = torch.histc(active, bins=N_BINS, min=0.0, max=float(active.max())).tolist()
        quantiles = torch.quantile(active, torch.tensor([0.5, 0.9, 0.99], dtype=active.dtype)).tolist()
    else:
        histogram, quantiles = [0.0] * N_BINS, [0.0, 0.0, 0.0]
    return {
        "transcoder_id": f"{site.kind}-{site.layer}", "index": index, "layer": site.layer, "feature": feature,
        "kind": site.kind,
        "examples_quantiles": [{"quantile_name": "Top activations", "examples": examples}],
        "top_logits": top, "bottom_logits": bottom,
        "act_min": float(acts.min()), "act_max": float(acts.max()),
        "quantile_values": quantiles, "histogram": histogram,
        "activation_frequency": float((acts > 0).double().mean()),
    }


def feature_cards(replacement: ReplacementModel, features: set[tuple[str, int, int]], corpus: torch.Tensor,
                  vocab: list[str], progress: bool = False) -> list[dict[str, Any]]:
    """The feature JSON of each (kind, layer, feature) over `corpus`, in sorted order."""
    site_of = {(s.kind, s.layer): i for i, s in enumerate(replacement.sites)}
    wanted: dict[int, list[int]] = {}
    for kind, layer, f in sorted(features):
        wanted.setdefault(site_of[(kind, layer)], []).append(f)
    acts = feature_activations(replacement, corpus, wanted, progress=progress)
    return [feature_json(replacement, i, f, acts[i][..., k], corpus, vocab)
            for i, feats in wanted.items() for k, f in enumerate(feats)]


def write_feature_jsons(replacement: ReplacementModel, features: set[tuple[str, int, int]], corpus: torch.Tensor,
                        vocab: list[str], out_dir: str | Path, progress: bool = False) -> list[Path]:
    """Write `out_dir/{global index}.json` for each (kind, layer, feature); returns the paths."""
    paths = []
    for data in feature_cards(replacement, features, corpus, vocab, progress=progress):
        path = Path(out_dir) / f"{data['index']}.json"
        write_json(path, data)
        paths.append(path)
    return paths


def corpus_windows(setup: Any, n_sequences: int, seed: int) -> torch.Tensor:
    """[n, n_ctx] token windows of our synthetic corpus in the setup's tokenizer (the contexts of feature cards):
    the corpus the model was trained on (`setup.corpus_config`), so a structural-corpus model's cards show its
    unmarked repeats and IOI frames."""
    from interp.data.corpus import training_tokens

    return torch.tensor(training_tokens(setup.tokenizer, n_sequences, setup.replacement.model.cfg.n_ctx, seed,
                                        setup.corpus_config))


def feature_card(replacement: ReplacementModel, kind: str, layer: int, feature: int, corpus: torch.Tensor,
                 vocab: list[str]) -> dict[str, Any]:
    """One feature's card (the feature JSON) over `corpus`, by (kind, layer, feature)."""
    site_of = {(s.kind, s.layer): i for i, s in enumerate(replacement.sites)}
    if (kind, layer) not in site_of:
        raise InterpError(f"no {kind} dictionary at layer {layer} in this replacement model")
    site = site_of[(kind, layer)]
    acts = feature_activations(replacement, corpus, {site: [feature]})[site][..., 0]
    return feature_json(replacement, site, feature, acts, corpus, vocab)

