"""Ask a just-started demo server to run app.py once, so the default network is warm for the first visitor.

Streamlit runs no project code until a session (or its script health check) connects; one request
to the script health check starts `advexp_ui.loaders.warm_start` at server start instead.
Bounded: polls 127.0.0.1 for at most 120 s, then exits quietly.
Run: python -m scripts.prime_app [--port 8501]   (`make app` starts it beside the server)
"""

from __future__ import annotations

import argparse
import time
import urllib.error
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/_stcore/script-health-check"
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)


if __name__ == "__main__":
    main()
