"""The allocator setting of the programs: freed activation memory stays with the process.

Read from glibc's own accounting (``mallinfo2``), not from time: under its defaults a block
of 64 MB is mapped from the system (``hblkhd``) and unmapped when freed; kept, it comes from
the heap and its bytes stay there, free for the next one (``fordblks``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vaelab.allocator import keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

BLOCK = 64 * 2**20
# A 64 MB block allocated, then freed; prints the bytes glibc holds mapped while it lives and
# the free bytes its heap keeps afterwards.
ACCOUNTING = """
import ctypes, json
import numpy as np
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena ordblks smblks hblks hblkhd "
                "usmblks fsmblks uordblks fordblks keepcost").split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
block = np.ones(8 * 2**20)
mapped = libc.mallinfo2().hblkhd
del block
print(json.dumps({"mapped": mapped, "kept_free": libc.mallinfo2().fordblks}))
"""


def accounting(setup: str, env: dict[str, str] | None = None) -> dict[str, int]:
    environ = {"PATH": "/usr/bin:/bin", **(env or {})}
    out = subprocess.run([sys.executable, "-c", setup + ACCOUNTING], env=environ,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return json.loads(out.splitlines()[-1])


def mapped_by_the_system(numbers: dict[str, int]) -> bool:
    return numbers["mapped"] >= BLOCK and numbers["kept_free"] < BLOCK


def kept_in_the_heap(numbers: dict[str, int]) -> bool:
    return numbers["mapped"] < BLOCK <= numbers["kept_free"]


SET_IT = "from vaelab.allocator import keep_freed_memory\nassert keep_freed_memory()\n"


def test_freed_blocks_stay_in_the_heap_for_the_next_tensor():
    assert mapped_by_the_system(accounting(""))  # glibc's defaults
    assert kept_in_the_heap(accounting(SET_IT))


def test_the_train_program_sets_it_before_its_work():
    """``--cfg job`` makes train's main() print the config and return: the setting is in place."""
    run_main = ("import sys\nfrom vaelab.cli.train import main\nsys.argv = ['train', '--cfg', "
                "'job']\ntry:\n    main()\nexcept SystemExit:\n    pass\n")  # fmt: skip
    assert kept_in_the_heap(accounting(run_main))
    assert mapped_by_the_system(accounting(run_main, {"VAELAB_MALLOC": "system"}))


def test_vaelab_train_sets_it_too():
    """A notebook's ``vaelab.train``: set before it checks its arguments (a str is refused)."""
    call = "import vaelab\ntry:\n    vaelab.train('beta=4')\nexcept TypeError:\n    pass\n"
    assert kept_in_the_heap(accounting(call))


def test_an_allocator_chosen_by_the_user_is_left_alone():
    assert not keep_freed_memory({"VAELAB_MALLOC": "system"})
    assert not keep_freed_memory({"MALLOC_ARENA_MAX": "2"})
    assert not keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert not keep_freed_memory({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"})
    setup = "from vaelab.allocator import keep_freed_memory\nkeep_freed_memory()\n"
    assert mapped_by_the_system(accounting(setup, {"MALLOC_ARENA_MAX": "2"}))
