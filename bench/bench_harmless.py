"""Conv-operator null space: streamed QR from kernel rows vs the dense matrix + SVD, in one process.

Both give the singular values and right singular vectors of the conv's linear operator on 28×28
inputs; the streamed one never holds the (C_out·H'·W') × 784 matrix, only R (784 × 784) and one
block of rows. Printed: median seconds of each over several repeats, their ratio (streamed /
dense), the largest relative difference of the singular values, and the float64 bytes each holds.

    .venv/bin/python bench/bench_harmless.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interp.harmless.subspace import BLOCK_BYTES, ConvOperator, dense_matrix, null_space  # noqa: E402


def _median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = {"cnn conv1 (1→8, 5×5, pad 2)": nn.Conv2d(1, 8, 5, padding=2, bias=False),
             "1→16, 3×3, pad 1": nn.Conv2d(1, 16, 3, padding=1, bias=False),
             "1→4, 3×3, stride 2": nn.Conv2d(1, 4, 3, stride=2, bias=False)}
    rows = []
    for name, conv in cases.items():
        op = ConvOperator(conv, (1, 28, 28))
        streamed_s, space = _median_seconds(lambda: null_space(op, name, "conv"), args.repeats)
        dense_s, s_dense = _median_seconds(lambda: torch.linalg.svd(dense_matrix(op), full_matrices=True)[1],
                                           args.repeats)
        s_streamed = torch.tensor(space.singular_values, dtype=torch.float64)
        block = min(op.d_out, max(op.d_in, BLOCK_BYTES // (8 * op.d_in)))
        rows.append({"conv": name, "rows": op.d_out, "d_in": op.d_in, "rank": space.rank,
                     "null_dimension": space.null_dimension, "streamed_s": round(streamed_s, 3),
                     "dense_svd_s": round(dense_s, 3), "ratio_streamed_over_dense": round(streamed_s / dense_s, 3),
                     "max_rel_sigma_diff": float(((s_streamed - s_dense).abs() / s_dense[0]).max()),
                     "dense_bytes": op.d_out * op.d_in * 8, "streamed_bytes": (op.d_in + block) * op.d_in * 8})
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
