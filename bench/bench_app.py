"""How long each page of the app takes to render on the shipped checkpoints and saved graphs.

Each page is run through Streamlit's `AppTest` (the script's own run time: computing and building
every element; the browser adds a little drawing time on top). "cold" is the first visit in a fresh
process (imports, model loading, caches filled); "warm" is a second visit by a new session, with the
caches of `st.cache_resource` / `st.cache_data` filled, which is what a user of a running app sees.
The target is warm ≤ 5 s per page. The load average is printed beside the figures because the
machine is shared and timings move with it. The baseline is the Home page (which only lists
folders), measured in the same run; each page is also given as a ratio to it.

    .venv/bin/python bench/bench_app.py [--json]
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
         "5_Harmless_perturbations.py"]


def visit(page: str | None) -> float:
    at = AppTest.from_file(HOME, default_timeout=600)
    if page:
        at.switch_page(f"pages/{page}")
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    if at.exception:
        raise SystemExit(f"{page}: {at.exception[0].message}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rows = {}
    for page in PAGES:
        cold = visit(page)
        warm = min(visit(page) for _ in range(2))
        rows[page or "Home.py"] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2)}
    base = rows["Home.py"]["warm_s"] or 1e-9
    for row in rows.values():
        row["warm_over_home"] = round(row["warm_s"] / base, 1)
    result = {"pages": rows, "max_warm_s": max(r["warm_s"] for r in rows.values()),
              "all_warm_within_5s": all(r["warm_s"] <= 5.0 for r in rows.values()),
              "load_average_1_5_15": list(os.getloadavg()), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result))
        return
    for name, row in rows.items():
        print(f"{name:32s} cold {row['cold_s']:6.2f} s   warm {row['warm_s']:5.2f} s   ({row['warm_over_home']}× Home)")
    print(f"max warm {result['max_warm_s']:.2f} s; all within 5 s: {result['all_warm_within_5s']}; "
          f"load average {result['load_average_1_5_15']}")


if __name__ == "__main__":
    main()
