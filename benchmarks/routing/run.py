"""The routing benchmark: `python benchmarks/routing/run.py [options]` is `alp bench routing [options]`.

The simulation lives in `agent_lightning.bench.routing` (so the installed CLI can run it); this script
only forwards. Example, the table and plot of docs/use/learning-router.md:

    python benchmarks/routing/run.py --seeds 101,102,103,104,105 \
        --markdown benchmarks/routing/results.md --plot benchmarks/routing/regret.png

The family of generated worlds (mean ± sd over today's world and 10 held-out generator seeds):

    python benchmarks/routing/run.py --family \
        --policies seed-q,capability,thompson,linucb,shared,category-ucb \
        --markdown benchmarks/routing/family.md --plot benchmarks/routing/family.png
"""

from __future__ import annotations

import sys

from agent_lightning.cli import app

if __name__ == "__main__":
    sys.exit(app(["bench", "routing", *sys.argv[1:]]))
