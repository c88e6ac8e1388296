"""How long each page of the app takes to render on the shipped checkpoints and saved graphs.

Each page is run through Streamlit's `AppTest` (the script's own run time: computing and building
every element; the browser adds a little drawing time on top). "cold" is the first visit in a fresh
process, right after the server started, pages visited back to back as a new user does: imports, models
and caches are whatever the app's background warm-up has reached by then. By default the warm-up starts
when the process starts, as `app/serve.py` (`make app`) starts it with the server;
`--warm-up-from first-page` starts it with the first page instead, as a plain `streamlit run app/Home.py`
does; `--after-warm-up` waits for it to finish first (a server that has been up a while). "rerun" is
the same session run again (what a widget change costs); "warm" is a second visit by a new session, with
the caches of `st.cache_resource` / `st.cache_data` filled, which is what a user of a running app sees.
Targets: cold <= 3 s, rerun <= 0.5 s, warm <= 5 s per page. The load average is printed beside the figures
because the machine is shared and timings move with it. The baseline is the Home page (which only lists
folders), measured in the same run; each page is also given as a ratio to it.

A server scans the installed packages for Streamlit components once, when it starts; `AppTest` does it
again for every new session (0.2-0.7 s here). That scan is done once, before the clock starts, unless
`--count-component-scan` (how this bench measured before; the figures then include it).

    .venv/bin/python bench/bench_app.py [--json] [--after-warm-up] [--warm-up-from server|first-page]
                                        [--count-component-scan]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "app" / "Home.py")
PAGES = [None, "1_Models.py", "2_Circuits.py", "3_Bilinear_spectra.py", "4_Relevance_maps.py",
         "5_Harmless_perturbations.py", "6_Recipes.py"]


COMPONENTS = {"scan_per_visit": False, "manager": None}


def new_session() -> AppTest:
    """An `AppTest` (a new session) whose component scan is the process's one scan, as in a server."""
    at = AppTest.from_file(HOME, default_timeout=600)
    if not COMPONENTS["scan_per_visit"]:
        if COMPONENTS["manager"] is None:
            from streamlit.components.v2.component_manager import BidiComponentManager

            manager = BidiComponentManager()
            manager.discover_and_register_components(start_file_watching=False)
            COMPONENTS["manager"] = manager
        at._bidi_component_manager = COMPONENTS["manager"]  # what AppTest.run would build on its first run
    return at


def visit(page: str | None, rerun: bool = False) -> float | tuple[float, float]:
    """Seconds of a first run of `page` in a new session (and of a rerun of it, as a widget change makes)."""
    at = new_session()
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


def start_server_warm_up() -> None:
    """What `app/serve.py` does when the server starts: the app's background warm-up, in this process."""
    sys.path.insert(0, str(ROOT / "app"))
    import serve

    serve.start_warm_up([])


def wait_for_warm_up() -> float:
    """Wait until the warm-up has imported the heavy libraries and filled the default caches; the seconds waited."""
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
    parser.add_argument("--warm-up-from", choices=("server", "first-page"), default="server",
                        help="server: the warm-up starts with the process, as `app/serve.py` starts it (default); "
                             "first-page: the first page starts it, as under a plain `streamlit run app/Home.py`")
    parser.add_argument("--count-component-scan", action="store_true",
                        help="let every new session scan the installed packages for components, as AppTest does "
                             "by default (a server scans once, at start)")
    args = parser.parse_args()
    COMPONENTS["scan_per_visit"] = args.count_component_scan
    rows = {}
    started = time.perf_counter()
    if args.warm_up_from == "server":
        start_server_warm_up()
    elif args.after_warm_up:
        visit(None)  # the first page starts the warm-up
    waited = wait_for_warm_up() if args.after_warm_up else None
    for page in PAGES:
        cold, rerun = visit(page, rerun=True)
        warm = min(visit(page) for _ in range(2))
        rows[page or "Home.py"] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2), "rerun_s": round(rerun, 2)}
    base = rows["Home.py"]["warm_s"] or 1e-9
    for row in rows.values():
        row["warm_over_home"] = round(row["warm_s"] / base, 1)
    result = {"pages": rows, "after_warm_up": args.after_warm_up, "warm_up_from": args.warm_up_from,
              "component_scan_counted": args.count_component_scan,
              "seconds_since_start": round(time.perf_counter() - started, 1),
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
    print(f"max cold {result['max_cold_s']:.2f} s; max rerun {result['max_rerun_s']:.2f} s; max warm "
          f"{result['max_warm_s']:.2f} s; all warm within 5 s: {result['all_warm_within_5s']}; warm-up from "
          f"{args.warm_up_from}; load average {result['load_average_1_5_15']}")


if __name__ == "__main__":
    main()
