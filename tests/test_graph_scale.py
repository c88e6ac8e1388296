"""The memory-bounded graph engine: influence from a row buffer, capped selection in order of influence,
gathered decoder rows, the batched backward pass, the memory estimate and the extract flags."""

from __future__ import annotations

import json

import pytest
import torch

from graph_helpers import save_tiny_lm, tiny_dictionaries, tiny_model
from interp.errors import InterpError
from interp.graph.attribution import ActiveSite, EdgeEngine, attribute
from interp.graph.influence import influence, node_influence, normalize_rows, partial_influence
from interp.graph.replacement import ReplacementModel

TOKENS = torch.tensor([0, 3, 5, 7, 3, 5, 9, 11, 4, 2, 8])


@pytest.fixture(scope="module")
def rep():
    model = tiny_model()
    transcoders, attn_saes = tiny_dictionaries(model)
    return ReplacementModel.build(model, transcoders, attn_saes, mode="full")


@pytest.fixture(scope="module")
def full(rep):
    return attribute(rep, TOKENS, batch_size=7)


def _random_dag(n: int, n_logits: int, seed: int) -> torch.Tensor:
    """A strictly lower-triangular signed adjacency whose last `n_logits` rows are the logits."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64) * (torch.rand(n, n, generator=g) < 0.4)
    A = torch.tril(A, diagonal=-1)
    A[:, n - n_logits:] = 0
    return A


def test_partial_influence_equals_influence_of_the_zero_filled_square_matrix():
    n, n_logits = 60, 3
    A = _random_dag(n, n_logits, seed=1)
    w = torch.zeros(n, dtype=torch.float64)
    w[n - n_logits:] = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    visited = [5, 17, 18, 30, 41, 42, 50, 55]
    # Reference: the square matrix with only the logit rows and the visited rows filled in.
    square = torch.zeros_like(A)
    square[visited] = A[visited]
    square[n - n_logits:] = A[n - n_logits:]
    expected = influence(normalize_rows(square), w)
    # The buffer: logit rows first, then visited rows in a scrambled order; columns exclude the logits.
    order = list(range(n - n_logits, n)) + visited[::-1]
    rows = A[order][:, :n - n_logits]
    columns = torch.tensor([-1] * n_logits + visited[::-1])
    weights = torch.tensor([0.5, 0.3, 0.2] + [0.0] * len(visited), dtype=torch.float64)
    got = partial_influence(rows, columns, weights, rows.abs().sum(1), chunk=5)
    assert (got - expected[:n - n_logits]).abs().max() <= 1e-14 * expected.abs().max()
    assert expected[visited].abs().sum() > 0      # the check covers paths through visited rows


def test_capped_graph_visits_features_greedily_by_influence(rep, full):
    # Reference: the same greedy walk over the full graph's rows, with influence from the visited rows.
    batch, cap = 3, 14
    n, n_feat, n_log = full.n_nodes, full.n_features, full.n_logits
    w = full.logit_weight_vector()
    visited: list[int] = []
    while len(visited) < cap:
        square = torch.zeros_like(full.adjacency)
        square[visited] = full.adjacency[visited]
        square[n - n_log:] = full.adjacency[n - n_log:]
        scores = node_influence(square, w)[:n_feat].clone()
        scores[visited] = -1
        visited += scores.topk(min(batch, cap - len(visited))).indices.tolist()
    capped = attribute(rep, TOKENS, batch_size=batch, max_feature_nodes=cap, update_interval=1)
    key = {(x.kind, x.layer, x.pos, x.index): j for j, x in enumerate(full.nodes[:n_feat])}
    got = sorted(key[(x.kind, x.layer, x.pos, x.index)] for x in capped.nodes[:capped.n_features])
    assert got == sorted(visited)
    # The kept rows are the full graph's rows restricted to the kept columns.
    cols = got + list(range(n_feat, n))
    assert (capped.adjacency[:cap] - full.adjacency[got][:, cols]).abs().max() <= 1e-12
    assert (capped.adjacency[-n_log:] - full.adjacency[-n_log:][:, cols]).abs().max() <= 1e-12


def test_refreshing_influence_less_often_still_fills_the_cap(rep, full):
    capped = attribute(rep, TOKENS, batch_size=2, max_feature_nodes=13, update_interval=4)
    assert capped.n_features == 13 and capped.adjacency.shape[0] == 13 + full.n_errors + full.n_tokens + full.n_logits


def test_batched_backward_rows_equal_plain_autograd_rows(rep):
    # Reference: one plain backward pass per target on an unbatched forward pass, projected by hand
    # onto every decoder row (no gathering, no vmap).
    snap = rep.snapshot(TOKENS)
    engine = EdgeEngine(rep, snap, zero_bos=True, batch_size=5)
    feats = engine.features()
    targets = [("feature", i, p, f) for i, p, f, _ in feats[::7]]
    got = engine.rows(targets)
    for row, (_, i, p, f) in zip(got, targets):
        logits, reads, leaves = rep.forward(snap, batch=1, requires_grad=True)
        grads = torch.autograd.grad(reads[i][0, p] @ rep.sites[i].W_enc[:, f], leaves, allow_unused=True)
        grads = [torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, leaves)]
        expected = []
        for s, (a, site) in enumerate(zip(snap.acts, rep.sites)):
            for q, h, value in [(q, h, float(a[q, h])) for q, h, _ in [(x[1], x[2], 0) for x in feats if x[0] == s]]:
                expected.append(value * float(grads[s + 1][0, q] @ site.W_dec[h]))
        for s in range(len(rep.sites)):
            e = (grads[s + 1][0] * snap.errors[s]).sum(-1)
            e[0] = 0.0
            expected += e.tolist()
        expected += (grads[0][0] * snap.embed).sum(-1).tolist()
        expected = torch.tensor(expected, dtype=got.dtype)
        assert (row - expected).abs().max() <= 1e-12 * max(1.0, float(expected.abs().max()))


def test_gathered_decoders_project_like_the_dense_projection():
    g = torch.Generator().manual_seed(3)
    acts = torch.relu(torch.randn(6, 40, generator=g, dtype=torch.float64) - 1.0)
    W_dec = torch.randn(40, 8, generator=g, dtype=torch.float64)
    grad = torch.randn(4, 6, 8, generator=g, dtype=torch.float64)
    site = ActiveSite.gather(acts, [(0, W_dec)], first=1)
    dense = (grad @ W_dec.T) * acts[None]                                    # [B, pos, d_sae]
    mask = acts != 0
    mask[0] = False
    expected = dense[:, mask]                                                # row-major: by position, then feature
    assert site.flat.numel() == int(mask.sum())
    assert (site.edges([grad]) - expected).abs().max() <= 1e-13


def test_last_position_logits_equal_the_full_forward(rep):
    snap = rep.snapshot(TOKENS)
    every, _, _ = rep.forward(snap)
    last, _, _ = rep.forward(snap, last_position_only=True)
    assert last.shape == (1, 1, every.shape[-1])
    assert (last[0, 0] - every[0, -1]).abs().max() <= 1e-12


def test_memory_estimate_refuses_an_uncapped_graph_above_the_limit(rep, full):
    with pytest.raises(InterpError, match="needs about"):
        attribute(rep, TOKENS, batch_size=8, max_memory=10_000)
    # A cap shrinks the estimate: the same limit admits a small capped graph.
    small = attribute(rep, TOKENS, batch_size=8, max_feature_nodes=12, max_memory=10 ** 6)
    assert small.n_features == 12
    with pytest.raises(InterpError, match="logit targets"):
        attribute(rep, TOKENS, batch_size=8, max_feature_nodes=1, max_n_logits=3, desired_logit_prob=0.9999)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("graph-scale") / "lm")


PROMPT = "when Eva and Leo arrived at the lake , Leo handed a cup to"


def test_extract_reports_size_time_and_memory(run_cli, lm, tmp_path):
    out = tmp_path / "g.json"
    code, stdout, err = run_cli("extract", lm, "--prompt", PROMPT, "--out", out, "--json", "--quiet",
                                "--max-feature-nodes", "20", "--batch-size", "8")
    assert code == 0, err
    s = json.loads(stdout)
    assert s["n_feature_nodes"] == 20 and s["n_active_features"] > 20
    data = json.loads(out.read_text())
    assert data["metadata"]["generation_settings"]["max_feature_nodes"] == 20
    assert 0 < s["attribution_seconds"] < 60 and s["peak_rss_mb"] > 100


def test_bfloat16_graph_is_close_to_the_float32_graph(lm):
    from interp.graph.setup import load_setup

    graphs = []
    for dtype in (torch.float32, torch.bfloat16):
        setup = load_setup(lm, mode="transcoder-only", dtype=dtype)
        graphs.append(attribute(setup.replacement, setup.encode(PROMPT), batch_size=16))
    a, b = graphs
    # bfloat16 may switch a feature on or off near zero: compare on the nodes both graphs have.
    keys = [{(n.kind, n.layer, n.pos, n.index): j for j, n in enumerate(g.nodes)} for g in graphs]
    common = [k for k in keys[0] if k in keys[1]]
    assert len(common) >= 0.95 * a.n_nodes
    ia = torch.tensor([keys[0][k] for k in common])
    ib = torch.tensor([keys[1][k] for k in common])
    sub_a, sub_b = a.adjacency[ia][:, ia], b.adjacency[ib][:, ib]
    # bfloat16 keeps 8 bits of mantissa: edges agree to a few parts in a hundred of the largest edge.
    assert (sub_a - sub_b).abs().max() <= 0.05 * sub_a.abs().max()
    assert (sub_a - sub_b).abs().max() > 0     # it did run in bfloat16


@pytest.mark.parametrize("args, message", [
    (["--max-feature-nodes", "1", "--max-memory", "1G"], "logit targets"),
    (["--max-feature-nodes", "0", "--max-memory", "10K"], "needs about"),
    (["--max-memory", "lots"], "max-memory"),
    (["--device", "cuda"], "CUDA"),
    (["--dtype", "bogus"], "dtype"),
])
def test_bad_scale_flags_fail_with_one_line_and_write_nothing(run_cli, lm, tmp_path, args, message):
    out = tmp_path / "g.json"
    code, _, err = run_cli("extract", lm, "--prompt", PROMPT, "--out", out, "--quiet", *args)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not out.exists()
