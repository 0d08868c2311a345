"""srca.warm_exec: programs forked from a warm zygote give what a cold run gives, under the same
limits, and the pool replaces a zygote that dies or runs cold when none starts."""
import os
import threading
import time

import pytest

from srca.execution import ExecLimits, program_answer, run_program
from srca.warm_exec import WarmPool, Zygote, ZygoteError


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


@pytest.mark.parametrize("code", [
    "import sympy\nx = sympy.Symbol('x')\nprint(sympy.latex(sympy.solve(x**2 - 2, x)[1]))",
    "from fractions import Fraction\nprint(Fraction(1, 3) + Fraction(1, 6))",
    "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)",
    "raise ValueError('no')",
    "import sys\nsys.exit('a message')",
    "print('x' * 100000)",
])
def test_a_warm_run_gives_what_a_cold_run_gives(zygote, code):
    warm, cold = zygote.run(code, ExecLimits()), run_program(code)
    assert (warm.stdout, warm.returncode, warm.timed_out) == (cold.stdout, cold.returncode, cold.timed_out)
    assert warm.stderr.splitlines()[-1:] == cold.stderr.splitlines()[-1:]  # the traceback's last line
    assert program_answer(warm) == program_answer(cold)


def test_a_warm_run_is_killed_at_the_timeout_with_its_children(zygote, tmp_path):
    marker = tmp_path / "alive"
    child = f"import time; time.sleep(3); open({str(marker)!r}, 'w').close()"
    code = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(60)\n"
    t0 = time.monotonic()
    r = zygote.run(code, ExecLimits(timeout_s=1.0))
    assert r.timed_out and r.returncode is None and not r.ok
    assert time.monotonic() - t0 < 20
    time.sleep(3.5)
    assert not marker.exists()
    assert zygote.run("print(5)", ExecLimits()).stdout == "5\n"  # the zygote serves on


def test_a_warm_run_has_the_limits_a_clean_environment_and_a_folder_of_its_own(zygote, monkeypatch):
    r = zygote.run("x = bytearray(4 * 1024 ** 3)", ExecLimits(memory_mb=512))
    assert r.returncode != 0 and "MemoryError" in r.stderr
    r = zygote.run("while True: pass", ExecLimits(timeout_s=30, cpu_s=1))
    assert not r.ok and not r.timed_out and r.returncode < 0  # SIGXCPU at one CPU second
    r = zygote.run("open('big', 'wb').write(b'x' * 2 * 1024 * 1024)", ExecLimits(file_mb=1))
    assert not r.ok
    monkeypatch.setenv("SRCA_TEST_SECRET", "s3cret")  # set after the zygote started, and before
    r = zygote.run("import os, sys\nprint(os.environ.get('SRCA_TEST_SECRET'), os.environ.get('HOME'))\n"
                   "print(os.getcwd())\nprint(sys.stdin.read() == '', sys.argv)", ExecLimits())
    out = r.stdout.splitlines()
    assert out[0] == "None None" and "srca-pot-" in out[1] and not os.path.exists(out[1])
    assert out[2] == "True ['program.py']"
    r = zygote.run("import sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'srca'))", ExecLimits())
    assert r.stdout == "[]\n"  # the zygote imported nothing of this process
    assert zygote.run("x = 1\nprint(globals().get('_read'), __name__)", ExecLimits()).stdout == "None __main__\n"


def test_a_dead_zygote_raises_and_the_pool_replaces_it():
    pool = WarmPool(1)
    try:
        assert pool.run("print(1)").stdout == "1\n" and pool.cold_runs == 0
        (z,) = pool._all
        os.killpg(z.proc.pid, 9)
        z.proc.wait()
        with pytest.raises(ZygoteError):
            z.run("print(2)", ExecLimits())
        assert pool.run("print(3)").stdout == "3\n"  # the dead one is not handed out again
        assert len(pool._all) == 1 and pool._all[0] is not z and pool.cold_runs == 0
    finally:
        pool.close()


def test_the_pool_runs_cold_when_no_zygote_starts(monkeypatch):
    import srca.warm_exec as warm_exec

    def broken(*a, **kw):
        raise ZygoteError("zygote: no ready line")

    tries = []
    monkeypatch.setattr(warm_exec, "Zygote", lambda *a, **kw: tries.append(1) or broken())
    pool = WarmPool(2)
    assert pool.run("print(7)").stdout == "7\n" and pool.cold_runs == 1
    assert pool.run("print(8)").stdout == "8\n" and pool.cold_runs == 2 and len(tries) == 1  # no second try


def test_the_pool_serves_threads_with_at_most_size_zygotes():
    pool = WarmPool(2)
    out = {}
    try:
        def go(i):
            out[i] = pool.run(f"import time\ntime.sleep(0.2)\nprint({i} * {i})").stdout

        threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert out == {i: f"{i * i}\n" for i in range(6)} and len(pool._all) == 2 and pool.cold_runs == 0
        zygotes = list(pool._all)
    finally:
        pool.close()
    assert len(zygotes) == 2 and not any(z.alive for z in zygotes) and pool._all == []
    assert pool.run("print(1)").stdout == "1\n" and pool.cold_runs == 1  # closed: cold


def test_pool_size_is_checked():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="WarmPool.size"):
            WarmPool(bad)
