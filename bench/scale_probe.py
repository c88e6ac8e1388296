"""Random models of real shapes for the graph engine's speed and memory benches.

`build_probe` makes a GPT-2-small-shaped HookedTransformer (12 layers, d_model 768, 12 heads,
d_mlp 3072, GELU, LayerNorm, vocabulary 50257) and one TopK transcoder per layer
(`blocks.L.ln2.hook_normalized` -> `blocks.L.hook_mlp_out`), all from a fixed seed, so nothing
large is committed. Random weights are fine for speed and memory: the engine's cost depends on
shapes and on the number of active features (k per position per layer), not on what the weights
mean. `save_probe` writes the same weights to plain safetensors files so that another engine
(circuit-tracer, in its own venv) can load them.

    python bench/scale_probe.py --out /tmp/probe --d-sae 6144 --k 64     # writes the files
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass
class ProbeShape:
    n_layers: int = 12
    d_model: int = 768
    n_heads: int = 12
    d_mlp: int = 3072
    d_vocab: int = 50257
    n_ctx: int = 1024
    d_sae: int = 6144
    k: int = 64
    seed: int = 0


def probe_config(shape: ProbeShape):
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        n_layers=shape.n_layers, d_model=shape.d_model, n_heads=shape.n_heads, d_head=shape.d_model // shape.n_heads,
        d_mlp=shape.d_mlp, n_ctx=shape.n_ctx, d_vocab=shape.d_vocab, act_fn="gelu_new", normalization_type="LN",
        positional_embedding_type="standard", seed=shape.seed, default_prepend_bos=True,
        original_architecture="GPT2LMHeadModel", model_name="random-gpt2-small-shape")


def transcoder_weights(shape: ProbeShape, layer: int) -> dict[str, torch.Tensor]:
    """W_enc [d_model, d_sae], W_dec [d_sae, d_model] (unit rows × 0.1), b_enc, b_dec; seeded per layer."""
    g = torch.Generator().manual_seed(shape.seed * 1000 + layer + 1)
    d, n = shape.d_model, shape.d_sae
    W_enc = torch.randn(d, n, generator=g) / d ** 0.5
    W_dec = torch.randn(n, d, generator=g)
    W_dec = 0.1 * W_dec / W_dec.norm(dim=1, keepdim=True)
    b_enc = 0.01 * torch.randn(n, generator=g)
    b_dec = 0.01 * torch.randn(d, generator=g)
    return {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}


def make_transcoder(shape: ProbeShape, layer: int, weights: dict[str, torch.Tensor]):
    """One of our SAE-Lens TopK transcoders (ReLU after TopK, as SAE-Lens' TopK SAE) holding `weights`."""
    from interp.models.dictionaries import TopKTranscoder, TopKTranscoderConfig

    cfg = TopKTranscoderConfig(d_in=shape.d_model, d_sae=shape.d_sae, d_out=shape.d_model, k=shape.k,
                               dtype="float32", device="cpu", apply_b_dec_to_input=False)
    cfg.metadata.hook_name = f"blocks.{layer}.ln2.hook_normalized"
    cfg.metadata.hook_name_out = f"blocks.{layer}.hook_mlp_out"
    cfg.metadata.model_name = "random-gpt2-small-shape"
    sae = TopKTranscoder(cfg)
    with torch.no_grad():
        for name, value in weights.items():
            getattr(sae, name).copy_(value)
    return sae.eval()


def build_probe(shape: ProbeShape = ProbeShape()):
    """(HookedTransformer, {layer: TopKTranscoder}) with random weights from `shape.seed`."""
    import contextlib
    import io

    from transformer_lens import HookedTransformer

    torch.manual_seed(shape.seed)
    with contextlib.redirect_stdout(io.StringIO()):
        model = HookedTransformer(probe_config(shape))
    model.eval()
    transcoders = {layer: make_transcoder(shape, layer, transcoder_weights(shape, layer))
                   for layer in range(shape.n_layers)}
    return model, transcoders


def probe_tokens(shape: ProbeShape, n_tokens: int) -> torch.Tensor:
    """A fixed prompt of `n_tokens` ids (first one the BOS id 50256 when the vocabulary has it)."""
    g = torch.Generator().manual_seed(shape.seed + 7)
    tokens = torch.randint(0, shape.d_vocab, (n_tokens,), generator=g)
    tokens[0] = min(50256, shape.d_vocab - 1)
    return tokens


def save_probe(shape: ProbeShape, out: Path) -> Path:
    """Write model.safetensors (TransformerLens state dict), transcoder_L.safetensors and shape.json."""
    from safetensors.torch import save_file

    model, transcoders = build_probe(shape)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}
    save_file(state, str(out / "model.safetensors"))
    for layer, sae in transcoders.items():
        save_file({k: getattr(sae, k).detach().contiguous() for k in ("W_enc", "W_dec", "b_enc", "b_dec")},
                  str(out / f"transcoder_{layer}.safetensors"))
    (out / "shape.json").write_text(json.dumps(asdict(shape), indent=1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    for field, value in asdict(ProbeShape()).items():
        p.add_argument("--" + field.replace("_", "-"), type=int, default=value)
    args = p.parse_args()
    shape = ProbeShape(**{f: getattr(args, f) for f in asdict(ProbeShape())})
    print(save_probe(shape, args.out))


if __name__ == "__main__":
    main()
