"""The linear computation graph on a tiny random model with random dictionaries (float64)."""

from __future__ import annotations

import random

import pytest
import torch
from graph_helpers import tiny_dictionaries, tiny_model

from interp.errors import InterpError
from interp.graph.attribution import attribute, constant_terms
from interp.graph.influence import edge_influence, node_influence, normalize_rows
from interp.graph.interventions import Intervention, intervene
from interp.graph.prune import (
    find_threshold,
    find_threshold_with_zeros,
    hierarchical_attribution,
    prune,
    prune_adjacency,
)
from interp.graph.replacement import ReplacementModel
from interp.graph.scores import graph_scores

TOKENS = torch.tensor([0, 3, 5, 7, 3, 5, 9, 11, 4])
MODES = ["full", "transcoder-only"]


@pytest.fixture(scope="module")
def parts():
    model = tiny_model()
    transcoders, attn_saes = tiny_dictionaries(model)
    return model, transcoders, attn_saes


@pytest.fixture(scope="module", params=MODES)
def built(request, parts):
    model, transcoders, attn_saes = parts
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode=request.param)
    graph = attribute(rep, TOKENS, batch_size=16)
    return rep, graph


def _site(rep, node):
    return next(i for i, s in enumerate(rep.sites) if s.kind == node.kind and s.layer == node.layer)


def test_replacement_forward_reproduces_the_real_logits(built, parts):
    rep, _ = built
    snap = rep.snapshot(TOKENS)
    real = parts[0](TOKENS[None])[0]
    logits, _, _ = rep.forward(snap)
    assert torch.allclose(snap.logits, real, atol=1e-12)
    assert (logits[0] - real).abs().max() < 1e-10


def test_graph_has_every_kind_of_node(built):
    rep, graph = built
    kinds = {n.kind for n in graph.nodes}
    expected = {"mlp", "mlp_error", "embedding", "logit"} | ({"attn", "attn_error"} if rep.mode == "full" else set())
    assert kinds == expected
    assert graph.n_features > 20 and graph.n_logits >= 1
    assert all(n.pos > 0 for n in graph.nodes if n.is_feature)      # position 0 is zeroed (circuit-tracer's BOS rule)


def test_incoming_edges_plus_constants_equal_each_pre_activation(built, parts):
    rep, graph = built
    snap = rep.snapshot(TOKENS)
    const_logits, const_reads = constant_terms(rep, snap)
    A = graph.adjacency
    # The actual values from the real model's own forward pass (TransformerLens cache) and the dictionaries'
    # own encoder matrices, not from the replacement model's snapshot.
    model, transcoders, attn_saes = parts
    with torch.no_grad():
        real_logits, cache = model.run_with_cache(TOKENS[None])
    checked = 0
    for j, node in enumerate(graph.nodes):
        if node.is_feature:
            i = _site(rep, node)
            const = float(const_reads[i][node.pos] @ rep.sites[i].W_enc[:, node.index])
            sae = transcoders[node.layer] if node.kind == "mlp" else attn_saes[node.layer]
            hook = f"blocks.{node.layer}.ln2.hook_normalized" if node.kind == "mlp" else f"blocks.{node.layer}.hook_attn_out"
            actual = float(cache[hook][0, node.pos] @ sae.W_enc.detach()[:, node.index])
        elif node.kind == "logit":
            direction = torch.full((rep.model.cfg.d_vocab,), -1.0 / rep.model.cfg.d_vocab, dtype=torch.float64)
            direction[node.index] += 1.0
            const = float(const_logits[-1] @ direction)
            actual = float(real_logits[0, -1] @ direction)
        else:
            assert not A[j].any()                                     # errors and tokens have no inputs
            continue
        assert actual == pytest.approx(graph.target_values[j], rel=1e-12)
        assert float(A[j].sum()) + const == pytest.approx(actual, rel=1e-9, abs=1e-12)
        checked += 1
    assert checked == graph.n_features + graph.n_logits


def test_edge_weight_equals_measured_direct_effect_of_ablation(built):
    """Ablate a source in the frozen replacement (every other feature frozen): the target moves by -A[t, s]."""
    rep, graph = built
    snap = rep.snapshot(TOKENS)
    A = graph.adjacency
    rng = random.Random(0)
    targets = [j for j, n in enumerate(graph.nodes) if n.is_feature and n.layer == 1 and n.kind == "mlp"]
    sources = [j for j, n in enumerate(graph.nodes) if n.kind in ("mlp", "attn", "mlp_error", "embedding")
               and n.layer <= 0 and n.pos > 0]
    pairs = []
    for t in rng.sample(targets, 4):
        earlier = [s for s in sources if graph.nodes[s].pos <= graph.nodes[t].pos]   # causal: others are 0
        pairs += [(t, s) for s in rng.sample(earlier, min(6, len(earlier)))]
    nonzero = 0
    for t, s in pairs:
        src, tgt = graph.nodes[s], graph.nodes[t]
        acts = [a.clone() for a in snap.acts]
        errors = [e.clone() for e in snap.errors]
        embed = snap.embed.clone()
        if src.is_feature:
            acts[_site(rep, src)][src.pos, src.index] = 0.0
        elif src.kind == "mlp_error":
            errors[_site(rep, type(src)("mlp", src.layer, 0, 0, 0.0))][src.pos] = 0.0
        else:
            embed[src.pos] = 0.0
        i = _site(rep, tgt)
        _, reads, _ = rep.forward(snap, acts=acts, errors=errors, embed=embed)
        before = snap.reads[i][tgt.pos] @ rep.sites[i].W_enc[:, tgt.index]
        after = reads[i][0, tgt.pos] @ rep.sites[i].W_enc[:, tgt.index]
        assert float(after - before) == pytest.approx(-float(A[t, s]), rel=1e-9, abs=1e-12)
        nonzero += bool(A[t, s] != 0)
    assert nonzero >= 5      # in full mode only same-position sources reach a layer-1 MLP feature directly


def test_constrained_frozen_intervention_moves_logit_by_its_edge(built):
    rep, graph = built
    n = graph.n_nodes
    logit_row = graph.adjacency[n - graph.n_logits]
    j = int(logit_row[:graph.n_features].abs().argmax())
    node = graph.nodes[j]
    direction = torch.full((rep.model.cfg.d_vocab,), -1.0 / rep.model.cfg.d_vocab, dtype=torch.float64)
    direction[graph.nodes[n - graph.n_logits].index] += 1.0
    res = intervene(rep, TOKENS, [Intervention(node.kind, node.layer, node.pos, node.index, 0.0)],
                    mode="constrained", freeze_features=True)
    change = float((res.new_logits - res.clean_logits) @ direction)
    assert change == pytest.approx(-float(logit_row[j]), rel=1e-9)


@pytest.mark.parametrize("how", ["constrained", "replacement", "free"])
def test_interventions_without_change_give_clean_logits_and_set_changes_them(built, how):
    rep, graph = built
    res = intervene(rep, TOKENS, [], mode=how)
    assert (res.new_logits - res.clean_logits).abs().max() < 1e-10
    node = next(n for n in graph.nodes if n.is_feature and n.layer == 0)
    res = intervene(rep, TOKENS, [Intervention(node.kind, 0, graph.n_tokens - 1, node.index, 5.0)], mode=how)
    assert (res.new_logits - res.clean_logits).abs().max() > 1e-4
    with pytest.raises(InterpError):
        intervene(rep, TOKENS, [Intervention("mlp", 7, 1, 0)], mode=how)


def test_free_ablation_is_the_real_model_with_one_decoder_contribution_removed(built):
    """Reference: the real model where layer 0's MLP output at the feature's position loses act × W_dec[f]
    (upstream of layer 0 nothing changes, so the live activation is the clean one); errors downstream follow."""
    rep, graph = built
    node = next(n for n in graph.nodes if n.kind == "mlp" and n.layer == 0 and n.pos == 3)
    i = _site(rep, node)
    sae = rep.sites[i].sae
    act = float(rep.snapshot(TOKENS).acts[i][3, node.index])

    def remove(x, hook):
        x = x.clone()
        x[0, 3] -= act * sae.W_dec[node.index]
        return x

    expected = rep.model.run_with_hooks(TOKENS[None], fwd_hooks=[("blocks.0.hook_mlp_out", remove)])[0, -1]
    res = intervene(rep, TOKENS, [Intervention("mlp", 0, 3, node.index, 0.0)], mode="free")
    assert (res.new_logits - expected).abs().max() <= 1e-12 * max(1.0, float(expected.abs().max()))
    # Errors follow in "free"; in "replacement" the layer-1 error stays at its clean value, so the two differ.
    kept = intervene(rep, TOKENS, [Intervention("mlp", 0, 3, node.index, 0.0)], mode="replacement").new_logits
    assert (res.new_logits - kept).abs().max() > 1e-6


def test_free_and_constrained_differ_when_attention_reads_the_change(built):
    rep, graph = built
    node = next(n for n in graph.nodes if n.kind == "mlp" and n.layer == 0 and n.pos == 2)
    ivs = [Intervention("mlp", 0, 2, node.index, 10.0)]
    free = intervene(rep, TOKENS, ivs, mode="replacement").new_logits
    constrained = intervene(rep, TOKENS, ivs, mode="constrained").new_logits
    assert (free - constrained).abs().max() > 1e-6


def test_batched_rows_equal_one_row_per_backward_pass(parts):
    model, transcoders, attn_saes = parts
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode="full")
    one = attribute(rep, TOKENS[:6], batch_size=1)
    many = attribute(rep, TOKENS[:6], batch_size=13)
    assert torch.allclose(one.adjacency, many.adjacency, rtol=1e-10, atol=1e-12)


def test_max_feature_nodes_keeps_the_most_influential_features(built):
    rep, full = built
    capped = attribute(rep, TOKENS, batch_size=8, max_feature_nodes=12)
    assert capped.n_features == 12
    assert capped.n_errors == full.n_errors and capped.n_logits == full.n_logits
    key = {(n.kind, n.layer, n.pos, n.index): j for j, n in enumerate(full.nodes[:full.n_features])}
    # Rows of the kept features are the full graph's rows restricted to the kept columns.
    kept = [key[(n.kind, n.layer, n.pos, n.index)] for n in capped.nodes[:12]]
    cols = kept + list(range(full.n_features, full.n_nodes))
    assert torch.allclose(capped.adjacency[:12], full.adjacency[kept][:, cols], atol=1e-12)
    # The kept features include the full graph's most influential one.
    influence = node_influence(full.adjacency, full.logit_weight_vector())[:full.n_features]
    assert int(influence.argmax()) in kept


def test_top_logits_cover_the_desired_probability_and_single_targets(parts, built):
    rep, graph = built
    probs = torch.softmax(rep.snapshot(TOKENS).logits[-1], -1)
    covered = sum(graph.logit_weights)
    assert covered >= 0.95 or graph.n_logits == 10
    assert graph.logit_weights == sorted(graph.logit_weights, reverse=True)
    assert graph.logit_weights[0] == pytest.approx(float(probs.max()))
    g = attribute(rep, TOKENS, target=5, batch_size=32)
    assert g.n_logits == 1 and g.nodes[-1].index == 5
    c = attribute(rep, TOKENS, contrast=(5, 6), batch_size=32)
    logits = rep.snapshot(TOKENS).logits[-1]
    assert c.target_values[-1] == pytest.approx(float(logits[5] - logits[6]))
    with pytest.raises(InterpError):
        attribute(rep, TOKENS, target=999)


def test_pruning_keeps_everything_at_thresholds_one_and_less_below(built):
    _, graph = built
    full = prune(graph, 1.0, 1.0)
    assert bool(full.node_mask.all())
    assert torch.equal(full.edge_mask, graph.adjacency != 0)
    small = prune(graph, 0.5, 0.9)
    assert small.node_mask.sum() < graph.n_nodes
    assert bool(small.node_mask[graph.n_nodes - graph.n_logits - graph.n_tokens:].all())  # tokens, logits stay
    assert small.edge_mask.sum() < full.edge_mask.sum()
    # Kept edges only join kept nodes.
    t, s = small.edge_mask.nonzero(as_tuple=True)
    assert bool(small.node_mask[t].all() and small.node_mask[s].all())
    with pytest.raises(InterpError):
        prune(graph, 1.5, 0.9)


def _reference_threshold(scores, threshold):
    ordered = scores.sort(descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum().clamp(min=1e-30)
    index = int(torch.searchsorted(cumulative, torch.tensor(threshold, dtype=cumulative.dtype)))
    return ordered[min(index, len(ordered) - 1)]


def _reference_prune(A, weights, always, is_feature, node_threshold, edge_threshold):
    """The pruning rule written out densely, as it was first implemented: every [n, n] matrix formed and all n²
    edge scores sorted. `prune_adjacency` must keep exactly the same nodes and edges."""
    n = A.shape[0]
    scores = node_influence(A, weights)
    if node_threshold >= 1.0:
        node_mask = torch.ones(n, dtype=torch.bool)
    else:
        node_mask = (scores >= _reference_threshold(scores, node_threshold)) | always
    pruned = A.clone()
    pruned[~node_mask] = 0
    pruned[:, ~node_mask] = 0
    if edge_threshold >= 1.0:
        edge_mask = pruned != 0
    else:
        edge_scores = edge_influence(pruned, weights)
        edge_mask = (edge_scores >= _reference_threshold(edge_scores.flatten(), edge_threshold)) & (pruned != 0)
    if node_threshold < 1.0 or edge_threshold < 1.0:
        while True:
            before = node_mask.clone()
            edge_mask[~node_mask] = False
            edge_mask[:, ~node_mask] = False
            node_mask &= always | edge_mask.any(0)
            node_mask &= ~is_feature | edge_mask.any(1)
            if torch.equal(before, node_mask):
                break
    return node_mask, edge_mask, scores


def _random_graph(seed, n, density, dtype):
    """A random acyclic graph in a shuffled node order: tokens and errors (sources only), features, logits. Weights
    from a few values (ties within and across rows) and explicit zeros (+0 and -0, entries that are no edge)."""
    g = torch.Generator().manual_seed(seed)
    n_tokens, n_errors, n_logits = 3, 4, 3
    values = torch.tensor([-2.0, -1.0, -0.5, 0.0, -0.0, 0.5, 1.0, 2.0], dtype=dtype)
    # Topological order: tokens, errors, features, logits; an edge goes from a lower to a higher index.
    A = values[torch.randint(len(values), (n, n), generator=g)]
    A *= torch.rand(n, n, generator=g) < density
    A = torch.tril(A, diagonal=-1)
    A[:n_tokens + n_errors] = 0                          # tokens and errors have no incoming edges
    A[:, n - n_logits:] = 0                              # logits have no outgoing ones
    A[n - n_logits:, :n_tokens] = 0.5                    # every logit reads a token
    if seed % 2:                                         # some features exactly alike: ties in influence
        A[n - n_logits:, n - n_logits - 2] = A[n - n_logits:, n - n_logits - 1]
    weights = torch.zeros(n, dtype=dtype)
    weights[n - n_logits:] = torch.tensor([0.5, 0.25, 0.25], dtype=dtype)
    always = torch.zeros(n, dtype=torch.bool)
    always[:n_tokens] = True
    always[n - n_logits:] = True
    is_feature = torch.zeros(n, dtype=torch.bool)
    is_feature[n_tokens + n_errors:n - n_logits] = True
    order = torch.randperm(n, generator=g)
    return A[order][:, order], weights[order], always[order], is_feature[order]


THRESHOLDS = [0.0, 0.5, 0.8, 0.9, 0.98, 0.9999999999999999, 1.0]


@pytest.mark.parametrize("seed, n, density, dtype", [(0, 40, 0.3, torch.float64), (1, 80, 0.1, torch.float64),
                                                     (2, 150, 0.05, torch.float64), (3, 60, 0.6, torch.float64),
                                                     (4, 90, 0.2, torch.float32), (5, 12, 0.0, torch.float64)])
def test_pruning_keeps_exactly_what_the_dense_reference_keeps(seed, n, density, dtype):
    """Bit for bit: influence is computed by the same operations, the edge threshold over the edges alone equals
    the one over all n² scores, and the dangling-node loop over edge lists equals the one over [n, n] masks."""
    A, weights, always, is_feature = _random_graph(seed, n, density, dtype)
    for node_threshold in THRESHOLDS:
        for edge_threshold in THRESHOLDS:
            node_mask, edge_mask, scores = _reference_prune(A, weights, always, is_feature, node_threshold,
                                                            edge_threshold)
            pruned = prune_adjacency(A, weights, always, is_feature, node_threshold, edge_threshold)
            assert torch.equal(pruned.node_mask, node_mask), (node_threshold, edge_threshold)
            assert torch.equal(pruned.edge_mask, edge_mask), (node_threshold, edge_threshold)
            assert torch.equal(pruned.influence, scores)


def test_threshold_over_the_nonzero_scores_equals_the_one_over_all():
    g = torch.Generator().manual_seed(0)
    # Small edge cases and draws with zero and tied scores; then many plain draws of a size at which a sum of
    # the values alone and one of the values padded with zeros round differently now and then.
    cases = [(0, 5, True), (1, 0, True), (7, 0, True), (50, 3, True), (5000, 195_000, True), (500, 19_500, True)]
    cases += [(500, 19_500, False)] * 30
    for dtype in (torch.float64, torch.float32):
        for k, zeros, zeros_and_ties in cases:
            values = torch.rand(k, generator=g, dtype=dtype)
            if zeros_and_ties:
                values[torch.rand(k, generator=g) < 0.05] = 0.0
                tied = torch.rand(k, generator=g) < 0.1
                values[tied] = values[torch.randint(0, max(k, 1), (int(tied.sum()),), generator=g)]
            full = torch.cat([values, torch.zeros(zeros, dtype=dtype)])[torch.randperm(k + zeros, generator=g)]
            # Besides the usual thresholds, knife edges: thresholds equal to cumulative shares of the full sort,
            # where a total rounded otherwise (summed without the zeros: a sum's rounding depends on its
            # length) would move the threshold.
            ordered = full.sort(descending=True).values
            cumulative = ordered.cumsum(0) / ordered.sum().clamp(min=1e-30)
            edges = [float(cumulative[i]) for i in torch.randint(0, max(k, 1), (20,), generator=g).tolist()]
            for threshold in THRESHOLDS + edges:
                expected = find_threshold(full, threshold)
                got = find_threshold_with_zeros(values, torch.empty(k + zeros, dtype=dtype), threshold)
                assert torch.equal(got, expected), (dtype, k, zeros, threshold)


def test_influence_series_equals_matrix_inverse(built):
    _, graph = built
    A = normalize_rows(graph.adjacency)
    w = graph.logit_weight_vector()
    n = A.shape[0]
    closed = w @ (torch.linalg.inv(torch.eye(n, dtype=A.dtype) - A) - torch.eye(n, dtype=A.dtype))
    assert torch.allclose(node_influence(graph.adjacency, w), closed, atol=1e-10)


def test_scores_lie_in_range_and_are_one_without_errors(built):
    _, graph = built
    s = graph_scores(graph)
    assert 0.0 < s.replacement_score < 1.0 and 0.0 < s.completeness_score < 1.0
    no_errors = graph.adjacency.clone()
    no_errors[:, graph.n_features:graph.n_features + graph.n_errors] = 0
    s0 = graph_scores(graph, no_errors)
    assert s0.replacement_score == pytest.approx(1.0) and s0.completeness_score == pytest.approx(1.0)


def test_scores_of_a_four_node_graph_equal_the_values_worked_out_by_hand():
    """README's replacement / completeness scores, on a graph small enough to do on paper.

    logit ← feature (−3), logit ← error (1); feature ← token (2), feature ← error (−2). Row-normalised |A|: the
    logit row is (¾ feature, ¼ error), the feature row (½ token, ½ error). Influence with logit weight 1:
    feature ¾, error ¼ + ¾·½ = ⅝, token ¾·½ = ⅜. Replacement = ⅜ / (⅜ + ⅝) = 0.375. Completeness =
    Σ (1 − error share of the row)(influence + w) / Σ (influence + w)
    = (¾·1 + ½·¾ + 1·⅝ + 1·⅜) / (1 + ¾ + ⅝ + ⅜) = 2.125 / 2.75."""
    from interp.graph.attribution import AttributionGraph, Node

    nodes = [Node("mlp", 0, 1, 0, 1.0), Node("mlp_error", 0, 1, 0, 0.0), Node("embedding", -1, 1, 3, 0.0),
             Node("logit", 1, 1, 5, 0.0)]
    A = torch.zeros(4, 4, dtype=torch.float64)
    A[3, 0], A[3, 1], A[0, 2], A[0, 1] = -3.0, 1.0, 2.0, -2.0
    graph = AttributionGraph(prompt="", tokens=[0, 3], token_strings=["<bos>", "x"], mode="transcoder-only",
                             n_layers=1, nodes=nodes, adjacency=A, logit_weights=[1.0], n_features=1, n_errors=1,
                             n_tokens=1, n_logits=1)
    scores = graph_scores(graph)
    assert scores.replacement_score == pytest.approx(0.375, abs=1e-15)
    assert scores.completeness_score == pytest.approx(2.125 / 2.75, abs=1e-15)


def test_scores_of_the_built_graph_equal_the_closed_form(built):
    """The same definitions on the real graph, by a matrix inverse instead of the code's power series."""
    _, graph = built
    a = graph.adjacency.abs()
    N = a / a.sum(1, keepdim=True).where(a.sum(1, keepdim=True) > 0, torch.ones(1, dtype=a.dtype))
    w = graph.logit_weight_vector()
    n = N.shape[0]
    I = w @ torch.linalg.inv(torch.eye(n, dtype=N.dtype) - N) - w  # w (N + N² + …)
    f, e, t = graph.n_features, graph.n_errors, graph.n_tokens
    replacement = I[f + e:f + e + t].sum() / (I[f + e:f + e + t].sum() + I[f:f + e].sum())
    completeness = ((1 - N[:, f:f + e].sum(1)) * (I + w)).sum() / (I + w).sum()
    scores = graph_scores(graph)
    assert scores.replacement_score == pytest.approx(float(replacement), rel=1e-10)
    assert scores.completeness_score == pytest.approx(float(completeness), rel=1e-10)
    assert 0.0 < scores.replacement_score < 1.0 and 0.0 < scores.completeness_score < 1.0


def test_hierarchical_attribution_cuts_off_small_nodes(built):
    _, graph = built
    everything = hierarchical_attribution(graph, threshold=0.0)
    few = hierarchical_attribution(graph, threshold=0.05)
    assert few.node_mask.sum() < everything.node_mask.sum()
    assert bool(few.node_mask[graph.n_nodes - graph.n_logits:].all())
    # Last-layer MLP features reach the logits only directly: their attribution is w · A[logit, s].
    w = graph.logit_weight_vector()
    last = [j for j, n in enumerate(graph.nodes) if n.kind == "mlp" and n.layer == graph.n_layers - 1]
    assert torch.allclose(everything.influence[last], w @ graph.adjacency[:, last], atol=1e-12)


def test_bad_inputs_raise_one_line_errors(parts):
    model, transcoders, attn_saes = parts
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode="full")
    with pytest.raises(InterpError, match="empty"):
        rep.snapshot(torch.tensor([], dtype=torch.long))
    with pytest.raises(InterpError, match="context"):
        rep.snapshot(torch.zeros(model.cfg.n_ctx + 1, dtype=torch.long))
    other = tiny_model(d_model=8)
    with pytest.raises(InterpError, match="another model"):
        ReplacementModel.build(other, transcoders, attn_saes)
    with pytest.raises(InterpError, match="layers"):
        ReplacementModel.build(model, {0: transcoders[0]}, attn_saes)
    with pytest.raises(InterpError, match="attention SAEs"):
        ReplacementModel.build(model, transcoders, None, mode="full")


def test_topk_dictionaries_with_decoder_norm_rescaling_keep_the_invariant(parts):
    """SAE-Lens TopK SAEs that rank pre-activations scaled by decoder norms: the graph folds the scaling in."""
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    model, transcoders, _ = parts
    torch.manual_seed(3)
    topk = {}
    for layer in range(model.cfg.n_layers):
        sae = TopKSAE(TopKSAEConfig(d_in=16, d_sae=24, k=4, dtype="float64", rescale_acts_by_decoder_norm=True,
                                    metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_attn_out")))
        with torch.no_grad():
            sae.W_dec.mul_(torch.rand(24, 1, dtype=torch.float64) * 2 + 0.2)   # rows of unequal norm
            sae.b_dec.normal_(0, 0.1)
        topk[layer] = sae
    rep = ReplacementModel.build(model, transcoders, topk, mode="full")
    snap = rep.snapshot(TOKENS)
    site = rep.sites[0]
    assert torch.allclose(site.reconstruct(snap.acts[0]), topk[0].decode(snap.acts[0]), atol=1e-12)
    assert int((snap.acts[0][1:] != 0).sum(-1).max()) <= 4
    graph = attribute(rep, TOKENS, batch_size=32)
    _, const_reads = constant_terms(rep, snap)
    for j, node in enumerate(graph.nodes[:graph.n_features]):
        i = _site(rep, node)
        const = float(const_reads[i][node.pos] @ rep.sites[i].W_enc[:, node.index])
        assert float(graph.adjacency[j].sum()) + const == pytest.approx(graph.target_values[j], rel=1e-9, abs=1e-12)


def test_attribution_graph_roundtrips_through_json(built):
    from interp.graph.attribution import AttributionGraph

    _, graph = built
    back = AttributionGraph.from_json(graph.to_json())
    assert torch.allclose(back.adjacency, graph.adjacency.double(), atol=1e-12)
    assert back.nodes == graph.nodes and back.logit_weights == graph.logit_weights
    assert back.n_features == graph.n_features and back.mode == graph.mode
