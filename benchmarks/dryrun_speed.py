"""How long the offline dry run takes, next to the floor of importing what it uses.

Run: `python benchmarks/dryrun_speed.py [--repeat N]`. It reports wall times; it asserts
nothing about them. The floor is a fresh interpreter importing the same provider submodules
the program touches; the dry run is `python -m dryrun --json` (program under mocks plus the
policy pack), also in a fresh interpreter, so the two numbers are directly comparable.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The provider SDKs load a module's types lazily, on first attribute access: touch what the
# program uses, or the floor would leave out most of the import cost.
IMPORT_FLOOR = "; ".join(
    (
        "import pulumi, pulumi_oci, pulumi_docker, pulumi_command, pulumi_random, pulumi_policy",
        "pulumi_oci.core.Instance, pulumi_oci.core.Vcn, pulumi_oci.core.get_images_output",
        "pulumi_oci.identity.get_availability_domains",
        "pulumi_docker.Container, pulumi_docker.RemoteImage, pulumi_docker.Provider",
        "pulumi_oci.core.VolumeBackupPolicy, pulumi_oci.core.VolumeBackupPolicyAssignment",
        "pulumi_command.remote.Command, pulumi_random.RandomPassword, pulumi_random.RandomBytes",
        "import cryptography.hazmat.primitives.serialization",
    )
)


def wall_seconds(command: Sequence[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, cwd=PROJECT_DIR, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def describe(label: str, times: Sequence[float]) -> str:
    return (
        f"{label:<34} median {statistics.median(times):6.2f} s   "
        f"min {min(times):6.2f} s   max {max(times):6.2f} s   (n={len(times)})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    floor = wall_seconds([sys.executable, "-c", IMPORT_FLOOR], args.repeat)
    dry_run = wall_seconds([sys.executable, "-m", "dryrun", "--json"], args.repeat)
    preview = wall_seconds([sys.executable, "-m", "dryrun", "--json", "--preview"], args.repeat)
    print(describe("import floor (providers + policy)", floor))
    print(describe("python -m dryrun --json", dry_run))
    print(describe("python -m dryrun --json --preview", preview))
    overhead = statistics.median(dry_run) - statistics.median(floor)
    ratio = statistics.median(dry_run) / statistics.median(floor)
    print(f"{'dry run above the floor':<34} {overhead:+.2f} s (median), {ratio:.2f}x the floor")


if __name__ == "__main__":
    main()
