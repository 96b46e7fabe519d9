"""Evaluate trained runs without training: ``python src/eval.py run=<folder>``.

The clone's entry point of ``vaelab-eval``; the program is ``vaelab.cli.eval``.
"""

from vaelab.cli.eval import main

if __name__ == "__main__":
    main()
