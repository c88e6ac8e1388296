"""How long each page of the app takes to render on the shipped checkpoints and saved graphs.

Each page is run through Streamlit's `AppTest` (the script's own run time: computing and building
every element; the browser adds a little drawing time on top). "cold" is the first visit in a fresh
process (imports, model loading, caches filled; with `--after-warm-up`, the first visit once the app's
background warm-up, which the first visitor of a server starts, has finished); "rerun" is the same
session run again (what a widget change costs); "warm" is a second visit by a new session, with the
caches of `st.cache_resource` / `st.cache_data` filled, which is what a user of a running app sees.
The target is warm ≤ 5 s per page. The load average is printed beside the figures because the
machine is shared and timings move with it. The baseline is the Home page (which only lists
folders), measured in the same run; each page is also given as a ratio to it.

    .venv/bin/python bench/bench_app.py [--json] [--after-warm-up]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "app" / "Home.py")
PAGES = [None, "1_Models.py", "2_Circuits.py", "3_Bilinear_spectra.py", "4_Relevance_maps.py",
         "5_Harmless_perturbations.py", "6_Recipes.py"]


def visit(page: str | None, rerun: bool = False) -> float | tuple[float, float]:
    """Seconds of a first run of `page` in a new session (and of a rerun of it, as a widget change makes)."""
    at = AppTest.from_file(HOME, default_timeout=600)
    if page:
        at.switch_page(f"pages/{page}")
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    if at.exception:
        raise SystemExit(f"{page}: {at.exception[0].message}")
    if not rerun:
        return seconds
    start = time.perf_counter()
    at.run()
    return seconds, time.perf_counter() - start


def wait_for_server_warm_up() -> float:
    """Open Home (which starts the app's background warm-up, as a server's first visitor does), then wait until
    the warm-up has imported the heavy libraries and filled the default caches; returns the seconds waited."""
    import sys

    visit(None)
    sys.path.insert(0, str(ROOT / "app"))
    import ui  # the module the pages import: the same process-wide warm-up

    start = time.perf_counter()
    ui.wait_for_warm_up()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--after-warm-up", action="store_true",
                        help="first wait for the app's background warm-up (a server that has been up a little "
                             "while), then visit each page for the first time")
    args = parser.parse_args()
    rows = {}
    waited = wait_for_server_warm_up() if args.after_warm_up else None
    for page in PAGES:
        cold, rerun = visit(page, rerun=True)
        warm = min(visit(page) for _ in range(2))
        rows[page or "Home.py"] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2), "rerun_s": round(rerun, 2)}
    base = rows["Home.py"]["warm_s"] or 1e-9
    for row in rows.values():
        row["warm_over_home"] = round(row["warm_s"] / base, 1)
    result = {"pages": rows, "after_warm_up": args.after_warm_up,
              "warm_up_waited_s": None if waited is None else round(waited, 1),
              "max_cold_s": max(r["cold_s"] for r in rows.values()),
              "max_rerun_s": max(r["rerun_s"] for r in rows.values()),
              "max_warm_s": max(r["warm_s"] for r in rows.values()),
              "all_warm_within_5s": all(r["warm_s"] <= 5.0 for r in rows.values()),
              "load_average_1_5_15": list(os.getloadavg()), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result))
        return
    for name, row in rows.items():
        print(f"{name:32s} cold {row['cold_s']:6.2f} s   rerun {row['rerun_s']:5.2f} s   warm {row['warm_s']:5.2f} s   "
              f"({row['warm_over_home']}× Home)")
    print(f"max warm {result['max_warm_s']:.2f} s; all within 5 s: {result['all_warm_within_5s']}; "
          f"load average {result['load_average_1_5_15']}")


if __name__ == "__main__":
    main()
