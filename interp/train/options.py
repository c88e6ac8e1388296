"""Options of LM and dictionary training, in a module without heavy imports so that the CLI can read its
defaults cheaply (the CLI's defaults are these).

The defaults are the recipes of the shipped `checkpoints/lm-*` models and their `transcoders/` and `attn-saes/`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LMTrainOptions:
    arch: str = "bilinear"
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 256
    n_ctx: int = 64
    steps: int = 4000
    batch_size: int = 32
    lr: float = 3e-3
    wd: float = 2.0  # strong decay: with 0.05, IOI on held-out names was 0.0–0.6 depending on the seed
    warmup_steps: int = 100
    seed: int = 0
    n_eval: int = 200  # held-out examples per task at the end
    tie_embeddings: bool = False  # train with W_U = W_Eᵀ (saved as an ordinary, untied HookedTransformer)
    eval_every: int = 0  # record the held-out task metrics every N steps (0: only at the end)
    # Exponential moving average of the weights with this decay (0: off); the saved model is the average.
    # Late in training held-out-name IOI swings by tens of points between nearby steps; the average does not.
    ema: float = 0.998
    # The training corpus (`interp.data.corpus.CorpusConfig`): "planted" is that of the shipped checkpoints (and
    # ignores the other three); "structural" adds unmarked repeats of repeat_min..repeat_max words, IOI composed
    # from clause families (those in ioi_heldout_families, comma-separated, never trained on) and bracket lines
    # of every depth up to bracket_depth.
    corpus: str = "planted"
    bracket_depth: int = 4
    repeat_min: int = 2
    repeat_max: int = 16
    ioi_heldout_families: str = "met_with,at_the,sat_with,carries,had_and_gave"


@dataclass
class DictTrainOptions:
    kind: str = "transcoder"  # transcoder | attn_sae
    variant: str = "topk"  # relu | topk
    expansion: int = 2  # d_sae = expansion × d_model
    k: int = 32  # TopK
    l1: float = 5.0  # ReLU: SAE-Lens l1_coefficient
    steps: int = 3000
    batch_size: int = 512
    lr: float = 1e-3
    n_tokens: int = 150_000  # cached training tokens per layer
    seed: int = 0
    layers: list[int] | None = None  # None: every layer


@dataclass
class CLTTrainOptions:
    """A TopK cross-layer transcoder (see `interp.train.clt`). `k` and `d_sae` None: those of the LM's shipped
    per-layer transcoders (`<LM>/transcoders`), else k 32 and d_sae = 2 × d_model."""

    k: int | None = None  # active features per layer and token
    d_sae: int | None = None  # features per layer
    steps: int = 12000
    batch_size: int = 512
    lr: float = 3e-3
    n_tokens: int = 150_000  # cached training tokens (each holds every layer's input and MLP output)
    seed: int = 0
    decoder_init: float = 0.01  # decoder rows start with this norm (per output layer)
    aux_k: int = 64  # dead-feature loss: the top aux_k pre-activations among dead features reconstruct the error
    aux_coef: float = 1 / 32  # its weight (0: off)
    dead_steps: int = 500  # a feature that has not fired for this many steps counts as dead


ARCHS = ("bilinear", "relu")


@dataclass
class TrainOptions:
    dataset: str = "fashion-mnist"
    arch: str = "bilinear"
    epochs: int = 20
    hidden: int = 512  # bilinear hidden width (the ReLU baseline's width is derived from the parameter count)
    embed: int | None = None  # optional linear embedding before the bilinear layer (None: none)
    bias: bool = False  # bilinear layer reads [x, 1] instead of x
    noise: float = 0.1  # std of the Gaussian noise added to training inputs
    wd: float = 0.1  # AdamW weight decay
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0
    warmup_frac: float = 0.0  # fraction of steps with a linear warm-up before the cosine decay
    # Bilinear only: weight × Σ_c (eigenvalue mass of Q_c outside its top `rank_keep`), paid every
    # `rank_every` steps — pushes each class's form towards rank `rank_keep` (0: no penalty).
    rank_penalty: float = 0.0
    rank_keep: int = 10
    rank_every: int = 10
    # Random-translation augmentation: each training image moves by a uniform random (dy, dx) in
    # [-shift, shift]² pixels, zero-filled (not wrapped), drawn from the seeded generator (0: off).
    shift: int = 0
    # The share of training images that are moved (the rest stay in place): a milder blur of the learned forms
    # than moving every image.
    shift_prob: float = 1.0
