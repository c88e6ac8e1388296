"""Start the workbench's server with its caches warming from the start (what `make app` runs):

    .venv/bin/python app/serve.py [streamlit run options] [-- --checkpoints DIR --circuits DIR]

e.g. `.venv/bin/python app/serve.py --server.port 8502 -- --checkpoints /data/ckpts`. Everything after the
script name is what `streamlit run app/Home.py` takes; the app runs exactly as under `streamlit run`.

Why a launcher: Streamlit runs a page's script only when a browser session connects, so nothing in the pages
(or in `ui`, which they import) can run when the server starts; left to the pages, the warm-up (pandas,
plotly, torch, the default graph, model and spectra: tens of seconds on a small machine) would start with
the first visit and compete with it. This file is the server process itself: it starts `ui`'s warm-up
thread first and then hands over to Streamlit's own `streamlit run` in the same process. The pages import
that same `ui` module (app/ is on `sys.path`, and the module is already in `sys.modules`), so their
`st.cache_data` / `st.cache_resource` functions, which are process-wide, find what the warm-up filled, and
`ui.setup`'s own call to start the warm-up is a no-op.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent
HOME = APP / "Home.py"


def app_args(argv: list[str]) -> list[str]:
    """The app's own arguments: what follows `--` (Streamlit passes them to the script as `sys.argv[1:]`)."""
    return argv[argv.index("--") + 1:] if "--" in argv else []


def start_warm_up(argv: list[str]) -> None:
    """Start `ui`'s warm-up in this process, reading the folders the app will read (`--checkpoints`,
    `--circuits` after `--`, or the environment)."""
    if str(APP) not in sys.path:
        sys.path.insert(0, str(APP))
    # The pages read their folders from sys.argv[1:]; Streamlit sets it to the same list when it starts.
    sys.argv = [str(HOME), *app_args(argv)]
    import ui  # defines its caches before Streamlit's runtime exists: fine (it quiets Streamlit's notice)

    ui.start_warm_up()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    start_warm_up(argv)
    from streamlit.web import cli

    cli.main(["run", str(HOME), *argv], prog_name="streamlit")


if __name__ == "__main__":
    main()
