"""``vaelab-report`` (``python src/report.py``): the report of a sweep,
``vaelab-report outputs/multirun/<date>/<time> [--by beta]``.

Writes results.csv, report.md and PNG plots into the sweep folder and prints the table.
"""

from __future__ import annotations

import argparse
import sys

from vaelab.report import write_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a Hydra multirun folder (one sub-folder per job)")
    parser.add_argument(
        "--by",
        default=None,
        help="the swept key to group by (default: reproduce for make reproduce's jobs, else beta)",
    )
    args = parser.parse_args()
    try:
        markdown, files = write_report(args.sweep_dir, args.by)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown)
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
