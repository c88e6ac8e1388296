"""Parity with circuit-tracer 0.5.0: the unpruned transcoder-only graph of the shipped lm-gelu on one ioi
prompt has the same nodes and the same edges (to float32 rounding) as circuit-tracer's.

The reference graph is a fixture made by bench/compare_circuit_tracer.py in its own venv (.venv-ct/);
this test needs only the fixture (see tests/fixtures/circuit_tracer_lm-gelu.README for the command).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from interp.graph.attribution import attribute
from interp.graph.setup import load_setup

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "circuit_tracer_lm-gelu.npz"
REL_TOL = 1e-5


def _keys(kinds: list[str], layers, positions, indices) -> list[tuple[str, int, int, int]]:
    return [(str(k), int(l), int(p), int(i)) for k, l, p, i in zip(kinds, layers, positions, indices)]


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE) as f:
        ref = {k: f[k] for k in f.files}
    names = [str(n) for n in ref["kind_names"]]
    ref["keys"] = _keys([names[k] for k in ref["kinds"]], ref["layers"], ref["positions"], ref["indices"])
    return ref


@pytest.fixture(scope="module")
def ours(reference):
    setup = load_setup(ROOT / str(reference["model"]), mode="transcoder-only")
    tokens = torch.tensor(reference["tokens"].tolist(), dtype=torch.long)
    assert tokens.tolist() == setup.encode(str(reference["prompt"])).tolist()   # same tokenizer, same prompt
    graph = attribute(setup.replacement, tokens, max_feature_nodes=None, batch_size=int(reference["batch_size"]),
                      zero_bos=True)
    keys = _keys([n.kind for n in graph.nodes], [n.layer for n in graph.nodes], [n.pos for n in graph.nodes],
                 [n.index for n in graph.nodes])
    return graph, keys


def test_fixture_is_small_and_from_circuit_tracer(reference):
    assert FIXTURE.stat().st_size < 1_000_000
    assert str(reference["circuit_tracer_version"]) == "0.5.0"
    assert reference["adjacency"].shape == (len(reference["keys"]),) * 2


def test_node_sets_equal(reference, ours):
    graph, keys = ours
    assert len(keys) == len(reference["keys"])
    assert set(keys) == set(reference["keys"])
    assert graph.tokens == reference["tokens"].tolist()
    kinds = {k[0] for k in keys}
    assert kinds == {"mlp", "mlp_error", "embedding", "logit"}


def test_adjacency_matches_circuit_tracer(reference, ours):
    graph, keys = ours
    where = {k: i for i, k in enumerate(reference["keys"])}
    perm = np.array([where[k] for k in keys])
    theirs = reference["adjacency"].astype(np.float64)[np.ix_(perm, perm)]
    A = graph.adjacency.double().numpy()
    scale = np.abs(A).max()
    assert scale > 0
    assert np.abs(A - theirs).max() <= REL_TOL * scale


def test_feature_activations_and_logit_weights_match(reference, ours):
    graph, keys = ours
    where = {k: i for i, k in enumerate(reference["keys"])}
    feats = [(j, where[k]) for j, k in enumerate(keys) if k[0] == "mlp"]
    mine = np.array([graph.nodes[j].activation for j, _ in feats])
    theirs = reference["activations"][[i for _, i in feats]].astype(np.float64)
    assert np.allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert np.allclose(graph.logit_weights, reference["logit_weights"], rtol=1e-4, atol=1e-6)
