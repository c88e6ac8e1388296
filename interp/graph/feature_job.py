"""Feature cards for every feature of a model's dictionaries, as a streaming map-reduce over token shards.

    interp features checkpoints/lm-gelu --corpus generated --tokens 1000000 --out-dir cards/ [--ray [ADDRESS]]

Map (`FeatureWorker.shard_stats`): one shard of corpus windows (`shard_tokens` tokens, a fixed cut that does
not depend on how many workers there are) → per feature of every dictionary: the number of active tokens,
min and max activation, the count of active activations in each of `N_FINE_BINS` fixed logarithmic bins,
and its top `N_EXAMPLES` windows (highest activation in the window, ties to the lower window id).
Reduce (`merge_stats`): sums, min, max, and the top windows of the union: associative and commutative, and
exact (integer counts; the top-k of a union is the top-k of the top-ks), so the order in which shards
finish changes nothing. A worker holds one shard's activations at a time and the state is
O(features × (bins + k)) whatever the number of tokens.
Cards (`FeatureWorker.cards`): for a chunk of features, the top windows are run again to show the
activation at every token; the top and bottom logits are computed once per feature. Each card is the
feature JSON the graph export and the app read (`interp.graph.features.feature_json`'s format): the
histogram has `N_BINS` bins over [0, act_max] (each fine bin's count goes to the bin holding its centre)
and the quantiles are read off the fine bins (each within one fine bin, ±5 %, of the exact value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from interp.errors import InterpError
from interp.graph.export import global_feature_index
from interp.graph.features import N_BINS, N_EXAMPLES, example_entry, logit_lists
from interp.results import Result

N_FINE_BINS = 256
FINE_LOW, FINE_HIGH = 1e-3, 1e3         # activations below / above fall in the first / last bin
FINE_EDGES = torch.logspace(math.log10(FINE_LOW), math.log10(FINE_HIGH), N_FINE_BINS - 1, dtype=torch.float64)
GENERATED = "generated"
DEFAULT_SHARD_TOKENS = 8192
CARD_CHUNK = 256                        # features per card task (their top windows are run again)
QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class Shard:
    """Windows [start, start + n) of the corpus; `tokens` [n, n_ctx] for a file corpus (None: generate them)."""
    index: int
    start: int
    n: int
    tokens: torch.Tensor | None = None


@dataclass
class SiteStats:
    """Mergeable statistics of one dictionary's features (d = d_sae)."""
    count: torch.Tensor        # [d] int64, active tokens
    act_min: torch.Tensor      # [d] float64, over every token
    act_max: torch.Tensor      # [d] float64
    fine: torch.Tensor         # [d, N_FINE_BINS] int64, active activations per fixed bin
    top_value: torch.Tensor    # [d, k] float64, max activation in the window (-inf: empty slot)
    top_window: torch.Tensor   # [d, k] int64, window id (-1: empty slot)


@dataclass
class FeatureStats:
    n_tokens: int
    n_windows: int
    sites: list[SiteStats]
    windows: dict[int, list[int]]     # the tokens of every window some top list holds


def _top_merge(values: torch.Tensor, windows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the k best (value desc, window asc) of [d, m] candidates: a total order, so exact and associative."""
    order = torch.argsort(windows, dim=1, stable=True)
    values, windows = values.gather(1, order), windows.gather(1, order)
    order = torch.argsort(-values, dim=1, stable=True)[:, :k]
    return values.gather(1, order), windows.gather(1, order)


def merge_stats(a: FeatureStats, b: FeatureStats) -> FeatureStats:
    """The statistics of the union of two disjoint sets of windows (exact; associative and commutative)."""
    sites = []
    for x, y in zip(a.sites, b.sites):
        value, window = _top_merge(torch.cat([x.top_value, y.top_value], 1), torch.cat([x.top_window, y.top_window], 1),
                                   x.top_value.shape[1])
        sites.append(SiteStats(x.count + y.count, torch.minimum(x.act_min, y.act_min),
                               torch.maximum(x.act_max, y.act_max), x.fine + y.fine, value, window))
    kept = {int(w) for s in sites for w in s.top_window.flatten().tolist() if w >= 0}
    windows = {w: t for w, t in {**a.windows, **b.windows}.items() if w in kept}
    return FeatureStats(a.n_tokens + b.n_tokens, a.n_windows + b.n_windows, sites, windows)


def shard_stats(replacement: Any, tokens: torch.Tensor, first_window: int, batch_size: int = 32) -> FeatureStats:
    """Map: the statistics of every feature over `tokens` [n, n_ctx] (window ids from `first_window`)."""
    sites = replacement.sites
    hooks = {s.read_hook for s in sites}
    state: FeatureStats | None = None
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start:start + batch_size]
        ids = torch.arange(first_window + start, first_window + start + len(batch))
        with torch.no_grad():
            _, cache = replacement.model.run_with_cache(batch.to(replacement.model.W_E.device),
                                                        names_filter=lambda n: n in hooks)
            per_site = []
            for site in sites:
                acts = site.encode(cache[site.read_hook]).double().cpu()        # [b, ctx, d]
                d = acts.shape[-1]
                active = acts > 0
                flat = acts.reshape(-1, d)
                token, feature = active.reshape(-1, d).nonzero(as_tuple=True)
                fine = torch.bucketize(flat[token, feature], FINE_EDGES)
                per_feature_bin = torch.bincount(feature * N_FINE_BINS + fine, minlength=d * N_FINE_BINS)
                window_max = acts.amax(dim=1).T                                  # [d, b]
                candidates = torch.where(window_max > 0, window_max, torch.tensor(-math.inf, dtype=torch.float64))
                cand_windows = torch.where(window_max > 0, ids.expand(d, -1), torch.tensor(-1))
                value, window = _top_merge(candidates, cand_windows, N_EXAMPLES)
                if value.shape[1] < N_EXAMPLES:       # fewer windows than k in this batch: pad empty slots
                    pad = N_EXAMPLES - value.shape[1]
                    value = torch.cat([value, torch.full((d, pad), -math.inf, dtype=torch.float64)], 1)
                    window = torch.cat([window, torch.full((d, pad), -1, dtype=torch.long)], 1)
                per_site.append(SiteStats(active.sum(dim=(0, 1)).long(), flat.amin(0), flat.amax(0),
                                          per_feature_bin.reshape(d, N_FINE_BINS), value, window))
        kept = {int(w) for s in per_site for w in s.top_window.flatten().tolist() if w >= 0}
        part = FeatureStats(batch.numel(), len(batch), per_site,
                            {w: t for w, t in zip(ids.tolist(), batch.tolist()) if w in kept})
        state = part if state is None else merge_stats(state, part)
    assert state is not None
    return state


# ---------------------------------------------------------------- the corpus, cut into shards


def check_corpus_file(path: Path) -> None:
    """One line when the corpus is not a readable UTF-8 text file."""
    if not path.is_file():
        raise InterpError(f"corpus file not found: {path} (give a UTF-8 text file or 'generated')")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if b"\x00" in head:
        raise InterpError(f"corpus {path} is not text (it holds NUL bytes); give a UTF-8 text file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:         # not just a character cut at the end of the block
            raise InterpError(f"corpus {path} is not UTF-8 text (byte {e.start}); give a UTF-8 text file") from None


def file_shards(path: Path, tokenizer: Any, n_ctx: int, n_windows: int, shard_windows: int) -> Iterator[Shard]:
    """Windows of `n_ctx` tokens (BOS, where the tokenizer has one, then the text's next tokens) read line by line,
    `shard_windows` per shard, at most `n_windows`: only one shard is held at a time."""
    bos = getattr(tokenizer, "bos_id", None)
    body = n_ctx - (1 if bos is not None else 0)
    pending: list[int] = []
    rows: list[list[int]] = []
    made = 0
    index = 0
    with open(path, encoding="utf-8") as f:
        try:
            for line in f:
                if not line.strip():
                    continue
                pending += tokenizer.encode(line, prepend_bos=False)
                while len(pending) >= body and made < n_windows:
                    rows.append(([bos] if bos is not None else []) + pending[:body])
                    pending = pending[body:]
                    made += 1
                    if len(rows) == shard_windows:
                        yield Shard(index, made - len(rows), len(rows), torch.tensor(rows))
                        index, rows = index + 1, []
                if made >= n_windows:
                    break
        except UnicodeDecodeError as e:
            raise InterpError(f"corpus {path} is not UTF-8 text ({e.reason} at byte {e.start} of a line)") from None
    if rows:
        yield Shard(index, made - len(rows), len(rows), torch.tensor(rows))
    if made == 0:
        raise InterpError(f"corpus {path} has fewer than {body} tokens: not one window of the model's context")


def generated_shards(n_windows: int, shard_windows: int) -> Iterator[Shard]:
    for index, start in enumerate(range(0, n_windows, shard_windows)):
        yield Shard(index, start, min(shard_windows, n_windows - start))


# ---------------------------------------------------------------- the worker (this process or a Ray actor)


class FeatureWorker:
    """Loads the model and dictionaries once; maps shards to statistics and turns merged statistics into cards."""

    def __init__(self, model: str | Path, transcoders: str | Path | None, attn_saes: str | Path | None,
                 graph_mode: str, device: str, dtype: torch.dtype | None, seed: int, threads: int | None = None,
                 allow_mismatch: bool = False):
        from interp.graph.setup import load_setup

        if threads is not None:
            torch.set_num_threads(threads)
        self.setup = load_setup(model, transcoders, attn_saes, graph_mode, device, dtype, allow_mismatch)
        self.seed = seed

    def n_ctx(self, _: Any = None) -> int:
        return int(self.setup.replacement.model.cfg.n_ctx)

    def tokenizer(self, _: Any = None) -> Any:
        return self.setup.tokenizer

    def shard_stats(self, shard: Shard) -> FeatureStats:
        tokens = shard.tokens
        if tokens is None:      # the generated corpus (the one the model was trained on): shard i has its own
            from interp.data.corpus import training_tokens  # seed, so any worker can make it

            tokens = torch.tensor(training_tokens(self.setup.tokenizer, shard.n, self.n_ctx(),
                                                  self.seed * 1_000_003 + shard.index, self.setup.corpus_config))
        return shard_stats(self.setup.replacement, tokens, shard.start)

    def cards(self, task: tuple[int, list[int], SiteStats, int, dict[int, list[int]]]) -> list[dict[str, Any]]:
        """Cards of `features` of site `site_index` from their merged statistics (`stats` holds those rows only)."""
        site_index, features, stats, n_tokens, windows = task
        rep, vocab = self.setup.replacement, self.setup.vocab
        site = rep.sites[site_index]
        wanted = sorted({int(w) for w in stats.top_window.flatten().tolist() if w >= 0})
        row_of = {w: r for r, w in enumerate(wanted)}
        acts = None
        if wanted:
            from interp.graph.features import feature_activations

            corpus = torch.tensor([windows[w] for w in wanted])
            acts = feature_activations(rep, corpus, {site_index: features})[site_index]     # [n, ctx, len(features)]
        cards = []
        for k, f in enumerate(features):
            examples = []
            for w in stats.top_window[k].tolist():
                if w < 0:
                    break
                examples.append(example_entry(acts[row_of[w], :, k], windows[w], vocab))
            top, bottom = logit_lists(rep, site_index, f, vocab)
            act_max = float(stats.act_max[k])
            histogram, quantiles = coarse_histogram(stats.fine[k], act_max)
            cards.append({
                "transcoder_id": f"{site.kind}-{site.layer}",
                "index": global_feature_index(site.kind, site.layer, f, rep.model.cfg.n_layers, site.d_sae),
                "layer": site.layer, "feature": f, "kind": site.kind,
                "examples_quantiles": [{"quantile_name": "Top activations", "examples": examples}],
                "top_logits": top, "bottom_logits": bottom,
                "act_min": float(stats.act_min[k]), "act_max": act_max,
                "quantile_values": quantiles, "histogram": histogram,
                "activation_frequency": int(stats.count[k]) / n_tokens,
            })
        return cards


def fine_centres() -> torch.Tensor:
    """The geometric centre of each fine bin (the outer bins: their inner edge)."""
    e = FINE_EDGES
    return torch.cat([e[:1], (e[:-1] * e[1:]).sqrt(), e[-1:]])


def coarse_histogram(fine: torch.Tensor, act_max: float) -> tuple[list[float], list[float]]:
    """`N_BINS` counts over [0, act_max] and the `QUANTILES` of the active activations, from the fine bins."""
    total = int(fine.sum())
    if total == 0 or act_max <= 0:
        return [0.0] * N_BINS, [0.0] * len(QUANTILES)
    centres = fine_centres().clamp(max=act_max)
    coarse = (centres / act_max * N_BINS).floor().long().clamp(0, N_BINS - 1)
    histogram = torch.zeros(N_BINS, dtype=torch.long).index_add_(0, coarse, fine.long())
    cumulative = fine.cumsum(0)
    quantiles = [float(centres[int(torch.searchsorted(cumulative, math.ceil(q * total)))]) for q in QUANTILES]
    return [float(c) for c in histogram.tolist()], quantiles


# ---------------------------------------------------------------- the job


@dataclass
class FeatureJobSummary(Result):
    out_dir: str
    n_features: int
    n_tokens: int
    n_windows: int
    n_shards: int
    workers: int
    seconds: float              # the whole job: loading, map, cards
    map_seconds: float          # the map alone, from when the workers have loaded the model
    tokens_per_second: float    # n_tokens / map_seconds, all workers together
    ray: str | None


def feature_manifest(model: Path, transcoders: Path | None, attn_saes: Path | None, graph_mode: str, corpus: str,
                     tokens: int, shard_tokens: int, seed: int, device: str, dtype: torch.dtype | None) -> dict[str, Any]:
    from interp.jobs import file_digest, weights_digest

    source = {"generated": True, "seed": seed} if corpus == GENERATED else {
        "file": Path(corpus).name, "sha256": file_digest(corpus)}
    return {"job": "features", "model": str(Path(model).resolve()),
            "weights_sha256": weights_digest(model, transcoders, attn_saes),
            "transcoders": str(Path(transcoders).resolve()) if transcoders else None,
            "attn_saes": str(Path(attn_saes).resolve()) if attn_saes else None, "graph_mode": graph_mode,
            "corpus": source, "tokens": tokens, "shard_tokens": shard_tokens, "device": device,
            "dtype": str(dtype) if dtype is not None else None}


def run_feature_job(model: str | Path, out_dir: str | Path, corpus: str = GENERATED, tokens: int = 100_000,
                    transcoders: str | Path | None = None, attn_saes: str | Path | None = None,
                    graph_mode: str = "full", shard_tokens: int = DEFAULT_SHARD_TOKENS, seed: int = 0,
                    device: str = "cpu", dtype: torch.dtype | None = None, ray: str | None = None,
                    workers: int | None = None, force: bool = False, allow_mismatch: bool = False,
                    progress: bool = True) -> FeatureJobSummary:
    """Cards for every feature over `tokens` corpus tokens (whole windows: rounded up to the model's context),
    written as `out_dir/{global index}.json`, each atomically. The same code runs in this process or, with `ray`,
    on Ray actors; the files are the same bytes either way."""
    import time

    from tqdm import tqdm

    from interp.io import write_json
    from interp.jobs import WorkerPool, check_job_folder, replace_earlier_job, write_manifest

    if tokens < 1:
        raise InterpError(f"--tokens must be ≥ 1, got {tokens}")
    if graph_mode not in ("full", "transcoder-only"):
        raise InterpError(f"feature cards are for dictionary features: --graph-mode full or transcoder-only, "
                          f"not {graph_mode}")
    if shard_tokens < 1:
        raise InterpError(f"--shard-tokens must be ≥ 1, got {shard_tokens}")
    if corpus != GENERATED:
        check_corpus_file(Path(corpus))
    out_dir = Path(out_dir)
    manifest = feature_manifest(Path(model), Path(transcoders) if transcoders else None,
                                Path(attn_saes) if attn_saes else None, graph_mode, corpus, tokens, shard_tokens,
                                seed, device, dtype)
    same_job = check_job_folder(out_dir, manifest, force)
    threads = 1 if ray is not None else None
    args = (model, transcoders, attn_saes, graph_mode, device, dtype, seed, threads, allow_mismatch)
    start = time.perf_counter()
    with WorkerPool(FeatureWorker, args, ray=ray, n_workers=workers) as pool:
        [(_, n_ctx)] = list(pool.map("n_ctx", [None]))
        n_windows = math.ceil(tokens / n_ctx)
        shard_windows = max(1, shard_tokens // n_ctx)
        if corpus == GENERATED:
            shards = generated_shards(n_windows, shard_windows)
        else:
            # The driver reads the file (one shard at a time) with the model's tokenizer.
            [(_, tokenizer)] = list(pool.map("tokenizer", [None]))
            shards = file_shards(Path(corpus), tokenizer, n_ctx, n_windows, shard_windows)
        if not same_job:
            replace_earlier_job(out_dir)
        write_manifest(out_dir, manifest)
        map_start = time.perf_counter()         # the workers have loaded the model: time the map alone
        state: FeatureStats | None = None
        n_shards = 0
        with tqdm(total=n_windows * n_ctx, desc="features: tokens", unit="tok", disable=not progress) as bar:
            for shard, part in pool.map("shard_stats", shards):
                state = part if state is None else merge_stats(state, part)
                n_shards += 1
                bar.update(shard.n * n_ctx)
        assert state is not None
        map_seconds = time.perf_counter() - map_start
        tasks = []
        for i, s in enumerate(state.sites):
            d = s.count.shape[0]
            for lo in range(0, d, CARD_CHUNK):
                rows = slice(lo, min(d, lo + CARD_CHUNK))
                sub = SiteStats(s.count[rows], s.act_min[rows], s.act_max[rows], s.fine[rows], s.top_value[rows],
                                s.top_window[rows])
                used = {int(w) for w in sub.top_window.flatten().tolist() if w >= 0}
                tasks.append((i, list(range(rows.start, rows.stop)), sub, state.n_tokens,
                              {w: state.windows[w] for w in sorted(used)}))
        n_features = 0
        with tqdm(total=sum(len(t[1]) for t in tasks), desc="features: cards", disable=not progress) as bar:
            for _, cards in pool.map("cards", tasks):
                for card in cards:
                    write_json(out_dir / f"{card['index']}.json", card)
                n_features += len(cards)
                bar.update(len(cards))
        n_workers = pool.n_workers or 1
    seconds = time.perf_counter() - start
    return FeatureJobSummary(out_dir=str(out_dir), n_features=n_features, n_tokens=state.n_tokens,
                             n_windows=state.n_windows, n_shards=n_shards, workers=n_workers,
                             seconds=round(seconds, 3), map_seconds=round(map_seconds, 3), tokens_per_second=round(state.n_tokens / map_seconds, 1),
                             ray=ray)
