"""Numba compilations of ismtk processes queue on one file lock beside the cache (ismtk.compiled)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

HOLD = """
from filelock import FileLock
from ismtk.compiled import lock_path
lock = FileLock(lock_path())
lock.acquire()
print("held", flush=True)
import sys
sys.stdin.read()
"""

COMPILE = """
from ismtk.compiled import jit

print("compiling", flush=True)  # from here on (numba takes its lock when caching is set up) it waits


@jit
def add_one(x):
    return x + 1


print(add_one(41), flush=True)
"""


def _start(code: str, env: dict[str, str], folder) -> subprocess.Popen:
    script = folder / f"script{len(list(folder.glob('script*.py')))}.py"  # numba caches functions of files only
    script.write_text(code)
    return subprocess.Popen(
        [sys.executable, str(script)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def test_a_compilation_waits_while_another_process_holds_the_lock(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    holder = _start(HOLD, env, tmp_path)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert (tmp_path / "ismtk-numba.lock").exists()
        compiler = _start(COMPILE, env, tmp_path)
        assert compiler.stdout.readline().strip() == "compiling"
        time.sleep(1.0)
        assert compiler.poll() is None, "compiled although another process held the lock"
    finally:
        holder.communicate("", timeout=60)
        out, _ = compiler.communicate(timeout=120)
    assert out.strip() == "42" and compiler.returncode == 0


def test_compiled_kernels_run_on_threads_and_cache(tmp_path):
    code = """
import threading
from ismtk.compiled import jit
@jit
def total(n):
    s = 0
    for i in range(n):
        s += i
    return s
results = []
threads = [threading.Thread(target=lambda: results.append(total(10))) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(results, sum(total.stats.cache_misses.values()))
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    script = tmp_path / "kernel.py"  # numba caches functions of files, not of -c code
    script.write_text(code)
    first = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    second = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert first.stdout.split("]")[0] == "[45, 45, 45, 45" and first.stdout.split()[-1] == "1", first.stderr
    assert second.stdout.split()[-1] == "0", second.stderr  # loaded from the cache the first process saved


STALE = """
import numpy as np
from ismtk.search import swipe
rng = np.random.default_rng(0)
query = rng.integers(0, 20, (1, 30)).astype(np.uint8)
table = rng.integers(-4, 6, (21, 21)).astype(np.int32)
target = rng.integers(0, 20, (1, 40)).astype(np.uint8)
print(swipe._exact(query, np.zeros(30, np.int16), table, np.zeros(1, np.int64), target, 11, 1)[0],
      sum(swipe._exact.stats.cache_hits.values()))
"""


def test_a_kernel_compiles_again_when_a_kernel_it_calls_changes(tmp_path):
    """numba checks a cached kernel against its own file only: after an edit of gotoh.py (or an upgrade over an
    older install, which leaves the caches), swipe's kernels, which compile gotoh's sw_score into them, returned
    the old results from the cache."""
    import shutil

    import ismtk

    package = tmp_path / "pkg" / "ismtk"
    shutil.copytree(os.path.dirname(ismtk.__file__), package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path / "pkg")}
    script = tmp_path / "stale.py"
    script.write_text(STALE)

    def run() -> tuple[int, int]:
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-800:]
        score, hits = done.stdout.split()
        return int(score), int(hits)

    score, _ = run()
    assert run() == (score, 1)  # loaded from the cache
    gotoh = package / "search" / "gotoh.py"
    text = gotoh.read_text()
    assert text.count("\n    return best\n") == 1
    gotoh.write_text(text.replace("\n    return best\n", "\n    return best + 1000\n"))
    assert run() == (score + 1000, 0)  # compiled again with the new callee
