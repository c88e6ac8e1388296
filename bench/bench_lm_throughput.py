"""Training throughput of our LM loop and our transcoder loop, each against a plain PyTorch loop
measured in the same run (ratios, so a busy machine affects both sides alike).

LM: `interp.train.lm.train_lm` (TransformerLens model, corpus generated on the fly, schedule, clipping)
vs a plain PyTorch causal transformer of the same widths on pre-generated tokens (tokens/s).
Transcoder: SAE-Lens' SAETrainer with our TopK transcoder class on cached activations vs a plain
PyTorch TopK transcoder loop on the same table (activation rows/s).

    .venv/bin/python bench/bench_lm_throughput.py [--steps 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from interp.data import corpus
from interp.train.dictionaries import DictTrainOptions, ShuffledBatches, make_training_sae
from interp.train.lm import LMTrainOptions, train_lm

torch.set_num_threads(1)


class PlainBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_mlp: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp), nn.GELU(), nn.Linear(d_mlp, d_model))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class PlainLM(nn.Module):
    def __init__(self, vocab: int, n_ctx: int, d_model: int, n_heads: int, d_mlp: int, n_layers: int):
        super().__init__()
        self.embed, self.pos = nn.Embedding(vocab, d_model), nn.Embedding(n_ctx, d_model)
        self.blocks = nn.ModuleList(PlainBlock(d_model, n_heads, d_mlp) for _ in range(n_layers))
        self.ln, self.unembed = nn.LayerNorm(d_model), nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        x = self.embed(tokens) + self.pos(torch.arange(n))
        for block in self.blocks:
            x = block(x, mask)
        return self.unembed(self.ln(x))


def bench_lm(steps: int) -> dict:
    options = LMTrainOptions(arch="gelu", steps=steps, warmup_steps=5, d_mlp=256, n_eval=10)
    _, result = train_lm(options, quiet=True)
    ours = result.tokens_per_second
    tok = corpus.make_tokenizer()
    data = torch.tensor(corpus.training_tokens(tok, steps * options.batch_size, options.n_ctx, seed=0))
    model = PlainLM(len(tok), options.n_ctx, options.d_model, options.n_heads, options.d_mlp, options.n_layers)
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr)
    start = time.perf_counter()
    for step in range(steps):
        batch = data[step * options.batch_size:(step + 1) * options.batch_size]
        logits = model(batch)
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, len(tok)), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    plain = steps * options.batch_size * options.n_ctx / (time.perf_counter() - start)
    return {"ours_tokens_per_s": ours, "plain_tokens_per_s": plain, "ratio": ours / plain}


def bench_transcoder(steps: int) -> dict:
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    d, batch = 128, 512
    torch.manual_seed(0)
    x = torch.randn(50_000, d)
    table = torch.cat([x, torch.tanh(x @ torch.randn(d, d) / d ** 0.5)], -1)
    options = DictTrainOptions(kind="transcoder", variant="topk", expansion=4, k=16, steps=steps, batch_size=batch)
    sae = make_training_sae(options, d, {"hook_name": "in", "hook_name_out": "out"})
    trainer = SAETrainer(cfg=SAETrainerConfig(total_training_samples=steps * batch, train_batch_size_samples=batch,
                                              lr=1e-3, lr_end=1e-4), sae=sae, data_provider=ShuffledBatches(table, batch, 0))
    start = time.perf_counter()
    trainer.fit()
    ours = steps * batch / (time.perf_counter() - start)

    enc, dec = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    batches = ShuffledBatches(table, batch, 0)
    start = time.perf_counter()
    for _ in range(steps):
        rows = next(batches)
        pre = enc(rows[:, :d])
        values, indices = pre.topk(16, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, indices, values.relu())
        loss = (dec(acts) - rows[:, d:]).pow(2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    plain = steps * batch / (time.perf_counter() - start)
    return {"ours_rows_per_s": ours, "plain_rows_per_s": plain, "ratio": ours / plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"lm": bench_lm(args.steps), "transcoder": bench_transcoder(args.steps * 5)}
    if args.json:
        print(json.dumps(result))
    else:
        for name, row in result.items():
            print(name, {k: round(v, 3) for k, v in row.items()})


if __name__ == "__main__":
    main()
