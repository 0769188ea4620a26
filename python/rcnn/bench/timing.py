"""Timings taken in alternation (rcnn.bench.train_cost, rcnn.bench.test_cost): medians, ratios
to the first, a printed table and the JSON file."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def write_timings(times: dict[str, list[float]], per: str, out: str | Path,
                  **extra: Any) -> dict[str, Any]:
    """times[name]: seconds per `per` (e.g. "iter", "image") of each round. Writes and returns
    {**extra, threads, name: {seconds_per_<per>_median, seconds_per_<per>_rounds,
    ratio_to_first}} (the names under "variants") and prints one line per name."""
    first = float(np.median(next(iter(times.values()))))
    result = {**extra, "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
              "variants": {k: {f"seconds_per_{per}_median": float(np.median(t)),
                               f"seconds_per_{per}_rounds": t,
                               "ratio_to_first": float(np.median(t)) / first}
                           for k, t in times.items()}}
    for k, r in result["variants"].items():
        print(f"{k:<20} {r[f'seconds_per_{per}_median'] * 1e3:8.1f} ms/{per}  "
              f"x{r['ratio_to_first']:.2f}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1))
    log.info("wrote %s", out)
    return result
