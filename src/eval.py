"""Evaluate trained runs without training, ``python src/eval.py run=<folder>``, or score any
model's codes, ``python src/eval.py represent=<module>:<function> data=dsprites``.

The clone's entry point of ``vaelab-eval``; the program is ``vaelab.cli.eval``.
"""

from vaelab.cli.eval import main

if __name__ == "__main__":
    main()
