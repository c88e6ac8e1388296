"""Jobs larger than one process: a pool of workers, in this process or as Ray actors, and the manifest that
marks an output folder as one job's.

    with WorkerPool(PromptWorker, (recipe, "cpu", None), ray="local") as pool:   # ray=None: this process
        for item, result in pool.map("run", range(8)):                            # results as they complete
            ...

A worker is a plain class: it loads what it needs (a model, its dictionaries) once in `__init__`, and its
methods are the tasks. Without Ray one instance runs every task here, in order; with Ray each of
`n_workers` actors holds one instance, tasks go to the actors (at most two waiting per actor, so a long
stream of inputs is never all in memory) and results come back in the order they finish. Ray restarts a
killed actor (`max_restarts`) and runs its unfinished tasks again (`max_task_retries`), so the consumer
sees every result exactly once. Ray is imported only here, only when a pool is given an address.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator

from interp.errors import InterpError

LOCAL = "local"                 # --ray without an address: start a Ray instance on this machine
MANIFEST_DIR = ".interp-job"    # inside an output folder: the job manifest and per-item records
MANIFEST = "manifest.json"
MAX_RESTARTS = 3                # a killed actor is restarted (its model loaded again) up to this many times


def add_ray_flags(p: argparse.ArgumentParser) -> None:
    """--ray [ADDRESS] and --workers, the same on every command that can run on Ray."""
    p.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                   help="run the tasks on Ray actors: without ADDRESS on a Ray started on this machine, with one "
                        "(HOST:PORT, ray://HOST:PORT or auto) on that running cluster")
    p.add_argument("--workers", type=_positive, default=None,
                   help="Ray actors, each loading the model once and using one CPU (default: one per CPU of the cluster)")


def _positive(text: str) -> int:
    from interp.argtypes import positive_int

    return int(positive_int(text))


def _check_reachable(address: str) -> None:
    """One line, before Ray tries for a minute, when nothing listens at HOST:PORT."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InterpError(f"--ray {address}: want HOST:PORT, ray://HOST:PORT or auto (or --ray alone for a local Ray)")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as e:
        raise InterpError(f"--ray {address}: no Ray cluster answers there ({e.strerror or e}); start one with "
                          "`ray start --head` or give --ray alone for a local Ray") from None


class WorkerPool:
    """`n_workers` instances of `cls(*args)`: Ray actors when `ray` is an address (or LOCAL), else one instance
    in this process. A Ray session already open in this process (a test's) is used and left open."""

    def __init__(self, cls: type, args: tuple = (), ray: str | None = None, n_workers: int | None = None):
        self.cls, self.args, self.address, self.n_workers = cls, args, ray, n_workers
        self.local: Any = None
        self.actors: list[Any] = []
        self._ray: Any = None
        self._owns_session = False

    def __enter__(self) -> "WorkerPool":
        if self.address is None:
            self.local = self.cls(*self.args)
            self.n_workers = 1
            return self
        try:
            import ray
        except ImportError:
            raise InterpError("--ray needs Ray: pip install -e '.[ray]'") from None
        self._ray = ray
        if self.address != LOCAL:
            _check_reachable(self.address)
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                                       "configure_logging": True}
            try:
                if self.address == LOCAL:
                    ray.init(num_cpus=self.n_workers or os.cpu_count() or 1, **options)
                else:
                    ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise InterpError(f"--ray {self.address}: cannot join a Ray cluster there "
                                  f"({(str(e).strip().splitlines() or [''])[0]})") from None
            self._owns_session = True
        try:
            # One CPU per actor: more actors than the cluster has CPUs would wait forever with tasks queued on them.
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            self.n_workers = cpus if self.n_workers is None else min(self.n_workers, cpus)
            actor = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(self.cls)
            self.actors = [actor.remote(*self.args) for _ in range(self.n_workers)]
            try:    # every actor has loaded what it needs (its __init__ ran), or one line saying why not
                ray.get([a.__ray_ready__.remote() for a in self.actors])
            except ray.exceptions.RayActorError as e:
                lines = [line.split("InterpError: ", 1)[1] for line in str(e).splitlines() if "InterpError: " in line]
                if lines:
                    raise InterpError(lines[-1]) from None
                raise
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        ray = self._ray
        if ray is not None:
            for a in self.actors:
                ray.kill(a, no_restart=True)
            self.actors = []
            if self._owns_session:
                ray.shutdown()
                self._owns_session = False

    def map(self, method: str, items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """(item, worker.method(item)) for every item: in order here, as they finish on Ray. At most two
        tasks wait per actor, so `items` may be a long generator."""
        if self.local is not None:
            for item in items:
                yield item, getattr(self.local, method)(item)
            return
        ray = self._ray
        pending: dict[Any, tuple[Any, int]] = {}
        load = [0] * len(self.actors)
        it = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * len(self.actors):
                try:
                    item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                k = min(range(len(self.actors)), key=lambda a: load[a])
                pending[getattr(self.actors[k], method).remote(item)] = (item, k)
                load[k] += 1
            if not pending:
                return
            [done], _ = ray.wait(list(pending), num_returns=1)
            item, k = pending.pop(done)
            load[k] -= 1
            try:
                result = ray.get(done)
            except ray.exceptions.RayTaskError as e:
                # An InterpError (bad input) raised inside a worker keeps its one line.
                cause = e.as_instanceof_cause()
                if isinstance(cause, InterpError):
                    raise InterpError(str(cause).splitlines()[0]) from None
                raise
            yield item, result


# ---------------------------------------------------------------- the job manifest of an output folder


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_digest(*folders: str | Path | None) -> str:
    """One sha256 over every safetensors file under `folders` (None skipped), with their relative paths: a job
    folder written from other weights is another job (a retrained model must not resume from its old graphs)."""
    h = hashlib.sha256()
    for folder in folders:
        if folder is None:
            continue
        folder = Path(folder)
        files = [folder] if folder.is_file() else sorted(folder.rglob("*.safetensors"))
        for path in files:
            h.update(f"{path.relative_to(folder) if path != folder else path.name}\0{file_digest(path)}\0".encode())
    return h.hexdigest()


# What each job writes into its folder besides `.interp-job/`, for `replace_earlier_job`: a recipe writes one
# `<slug>.json` per prompt (named by its record in `.interp-job/prompts/`), `features/` and `summary.json`; a feature
# job one `<global index>.json` card per feature.
RECIPE_OUTPUTS = ("features", "summary.json")


def replace_earlier_job(out_dir: str | Path) -> None:
    """Before a job writes into a folder an earlier job wrote (--force, or other inputs): delete what that job wrote,
    by the kind its manifest names, so that none of its files outlives it beside the new ones (a feature card of a
    feature the new graphs or dictionaries do not have, a graph of a prompt the recipe no longer holds). Files the
    earlier job did not write stay. Call it after the new job's inputs are checked, before it writes."""
    out_dir = Path(out_dir)
    try:
        earlier = json.loads(manifest_path(out_dir).read_text(encoding="utf-8")).get("job")
    except (OSError, ValueError, AttributeError):
        return  # no earlier job (or no readable manifest): nothing is known to be its output
    if earlier == "features":
        for card in out_dir.glob("*.json"):
            if card.stem.isdigit():
                card.unlink()
        return
    records = out_dir / MANIFEST_DIR / "prompts"
    if records.is_dir():
        for record in records.glob("*.json"):
            (out_dir / record.name).unlink(missing_ok=True)
        shutil.rmtree(records)
    for name in RECIPE_OUTPUTS:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def manifest_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / MANIFEST_DIR / MANIFEST


def check_job_folder(out_dir: str | Path, manifest: dict[str, Any], force: bool, what: str = "--out-dir") -> bool:
    """Before any work: may this job write into `out_dir`? True when the folder holds this same job's
    manifest (a rerun, which resumes), False when it is new, empty or replaced with `force`. One line
    (InterpError) when it holds another job's files or, without a manifest, anything at all (unless `force`)."""
    from interp.io import check_output_folder

    out_dir = Path(out_dir)
    path = manifest_path(out_dir)
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = None
        if existing == manifest:
            check_output_folder(out_dir, True, what)        # the other guards (checkpoints, permissions)
            return not force
        if not force:
            job = existing.get("job", "?") if isinstance(existing, dict) else "unreadable"
            raise InterpError(f"{what} {out_dir} holds the files of another job ({job}, other inputs or settings: "
                              f"see {path}); choose another folder or pass --force to replace them")
    check_output_folder(out_dir, force, what)
    return False


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> None:
    from interp.io import write_json

    write_json(manifest_path(out_dir), manifest)
