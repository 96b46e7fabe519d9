"""The report of a sweep: ``python src/report.py outputs/multirun/<date>/<time>``.

The clone's entry point of ``vaelab-report``; the program is ``vaelab.cli.report``.
"""

from vaelab.cli.report import main

if __name__ == "__main__":
    raise SystemExit(main())
