"""``vaelab-report`` (``python src/report.py``): the report of a sweep, by β (or by model, for a
sweep of the model alone), ``vaelab-report outputs/multirun/<date>/<time> [--by beta]``.

Writes results.csv, report.md and PNG plots into the sweep folder and prints the table.
Exit status 2 means bad input: a folder without a sweep, a ``--by`` key no job has.
"""

from __future__ import annotations

import argparse
import os
import sys

from vaelab.report import UnknownKey, write_report


def main() -> int:
    description = " ".join(__doc__.split("\n\n")[0].split())  # the first paragraph, whole
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("sweep_dir", help="a Hydra multirun folder (one sub-folder per job)")
    parser.add_argument(
        "--by",
        default=None,
        help="the swept key to group by (default: reproduce for make reproduce's jobs; model "
        "when the sweep varies the model and not beta; else beta)",
    )
    try:
        args = parser.parse_args()
        try:
            markdown, files = write_report(args.sweep_dir, args.by)
        except (FileNotFoundError, UnknownKey) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(markdown)
        print("wrote " + ", ".join(str(f) for f in files))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted; the files are written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
