"""Device and dtype parsing shared by the CLI and the app. CPU by default; nothing assumes a GPU."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator

from interp.errors import InterpError

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("float32", "float64", "bfloat16", "float16")


def __getattr__(name: str) -> Any:
    # DTYPES maps names to torch dtypes; built on first use so that importing this module (as every command
    # module does) does not import torch.
    if name == "DTYPES":
        import torch

        return {n: getattr(torch, n) for n in DTYPE_NAMES}
    raise AttributeError(f"module 'interp.device' has no attribute {name!r}")


def resolve_device(name: str | None) -> "torch.device":
    import torch

    name = name or "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InterpError(f"device {name!r} asked for, but no CUDA device is available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InterpError(f"unknown device {name!r}; use cpu or cuda[:N]") from None


def resolve_dtype(name: str | None) -> "torch.dtype":
    import torch

    name = name or "float32"
    if name not in DTYPE_NAMES:
        raise InterpError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPE_NAMES)}")
    return getattr(torch, name)


def check_dtype_runs(device: "torch.device", dtype: "torch.dtype") -> None:
    """InterpError unless `device` can multiply matrices in `dtype` (half precision on some CPUs cannot)."""
    import torch

    try:
        x = torch.ones(4, 4, dtype=dtype, device=device)
        (x @ x).sum().item()
    except (RuntimeError, TypeError) as e:
        raise InterpError(f"device {device} cannot compute in {str(dtype).removeprefix('torch.')} "
                          f"({str(e).splitlines()[0]}); use --dtype float32") from None


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch CPU threads (at least 1), then restore the previous setting, so that
    in-process callers (tests, the app) keep theirs. On 2 cores, give concurrent jobs 1 thread each:
    two 2-thread jobs side by side run many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
