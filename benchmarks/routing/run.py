"""The routing benchmark: `python benchmarks/routing/run.py [options]` is `alp bench routing [options]`.

The simulation lives in `agent_lightning.bench.routing` (so the installed CLI can run it); this script
only forwards. Example, the README's table and plot:

    python benchmarks/routing/run.py --seeds 101,102,103,104,105 \
        --markdown benchmarks/routing/results.md --plot benchmarks/routing/regret.png
"""

from __future__ import annotations

import sys

from agent_lightning.cli import app

if __name__ == "__main__":
    sys.exit(app(["bench", "routing", *sys.argv[1:]]))
