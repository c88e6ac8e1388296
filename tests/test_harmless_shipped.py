"""The first layer of every shipped dense image model: its exact harmless space keeps the logits at 100× ‖x‖.

Conv models are checked on small and 28×28 convs in test_harmless_subspace.py (the shipped CNN's
16-channel operator takes too long here on two busy cores); see the README for its figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from interp.data.images import load_fashion_mnist
from interp.harmless.apply import check_perturbation
from interp.harmless.layers import harmless_space, layer_operator
from interp.harmless.subspace import MatrixOperator
from interp.io import read_json

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
DENSE = sorted(p.parent.name for p in CHECKPOINTS.glob("*/config.json")
               if read_json(p).get("kind") == "classifier" and read_json(p)["model"].get("arch") in ("bilinear", "relu"))


@pytest.fixture(scope="module")
def images():
    return load_fashion_mnist().test.images[:3]


def test_there_are_shipped_dense_models():
    assert "fmnist-bilinear-embed64-s0" in DENSE


@pytest.mark.parametrize("name", DENSE)
def test_shipped_first_layer_space(name, images):
    from interp.models.checkpoints import load_classifier

    model, _, _ = load_classifier(CHECKPOINTS / name)
    space = harmless_space(model)
    op, _, _ = layer_operator(model, space.layer, (28, 28))
    assert isinstance(op, MatrixOperator)
    rank = int(torch.linalg.matrix_rank(op.matrix))
    assert space.rank == rank and space.null_dimension == 784 - rank
    if not space.exact:
        pytest.skip(f"{name}: first layer has full column rank, no exact space")
    for x in images:
        check = check_perturbation(model, x, space, magnitude=100.0)
        assert check.max_abs_logit_change <= 1e-9 * check.max_abs_logit
        assert check.prediction_before == check.prediction_after
