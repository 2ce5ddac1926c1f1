"""Holds a local Ray cluster for the tests (2 CPUs): prints its address, keeps it until stdin closes.

Started once per test session by the ``ray_address`` fixture, so the Ray tests share one cluster (Ray's
start-up costs seconds) and it is shut down by this process itself, never by ``ray stop`` (which would end
every Ray process on the machine).
"""

from __future__ import annotations

import os
import sys

import ray


def main() -> int:
    context = ray.init(num_cpus=int(os.environ.get("RAY_TEST_CPUS", "2")), include_dashboard=False,
                       logging_level="WARNING")
    print(context.address_info["gcs_address"], flush=True)
    sys.stdin.read()  # until the test session closes our stdin
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
