"""run_foreground runs commands as one unit: prefixed output, one exit stops all, nothing left behind."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import psutil
import pytest

from controlplane.devstack.supervisor import run_foreground

# Each child prints its pid first, so the test can check afterwards that it is gone.
SLEEPER = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
STUBBORN = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print(os.getpid(), flush=True); time.sleep(60)"
)
FORKER = (  # leaves a grandchild in its process group, then exits
    "import os, subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "print(os.getpid(), child.pid, flush=True); time.sleep(60)"
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def pids_in(output: str, name: str) -> list[int]:
    return [int(word) for line in output.splitlines() if line.startswith(name) for word in line.split("|")[1].split()]


def none_running(pids: list[int], within: float = 3.0) -> bool:
    """Every process gone (or a zombie) within `within` seconds: a signalled process dies a moment after the
    signal is sent, not at once (a grandchild is reaped by init, on its own time)."""

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_first_exit_stops_the_others_and_is_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_foreground(
        {"web": python(SLEEPER), "job": python("import time; time.sleep(0.5); print('bye'); raise SystemExit(3)")},
        {"GREETING": "hi"},
    )
    output = capsys.readouterr().out
    assert code == 3
    assert "job | bye" in output.splitlines()
    web = pids_in(output, "web")
    assert len(web) == 1
    assert none_running(web)


def test_env_is_laid_over_the_current_environment(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_foreground(
        {"env": python("import os; print(os.environ['GREETING'], 'PATH' in os.environ)")}, {"GREETING": "hi"}
    )
    assert code == 0
    assert "env | hi True" in capsys.readouterr().out.splitlines()


def test_sigterm_stops_every_child(capsys: pytest.CaptureFixture[str]) -> None:
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    code = run_foreground({"a": python(SLEEPER), "b": python(FORKER)}, {})
    output = capsys.readouterr().out
    assert code == 128 + signal.SIGTERM
    assert time.monotonic() - started < 10
    pids = pids_in(output, "a") + pids_in(output, "b")
    assert len(pids) == 3
    assert none_running(pids)


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code = run_foreground(
        {"stubborn": python(STUBBORN), "quitter": python("import time; time.sleep(0.5)")}, {}, grace_seconds=1.0
    )
    output = capsys.readouterr().out
    assert code == 0
    assert 1.0 <= time.monotonic() - started < 10
    stubborn = pids_in(output, "stubborn")
    assert len(stubborn) == 1
    assert none_running(stubborn)


def test_grandchildren_left_in_the_group_are_killed(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_foreground(
        {"forker": python(FORKER), "quitter": python("import time; time.sleep(1.0); raise SystemExit(1)")}, {}
    )
    output = capsys.readouterr().out
    assert code == 1
    pids = pids_in(output, "forker")
    assert len(pids) == 2
    assert none_running(pids)
