"""Fixtures: one chaosgate mock per API for the whole session, on 127.0.0.1:0."""
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("CHAOSGATE_BIN", str(ROOT / "target" / "debug" / "chaosgate"))
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def _start(api: str):
    proc = subprocess.Popen(
        [BIN, "mock", "--api", api, "--listen", "127.0.0.1:0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for _ in range(20):
        line = proc.stdout.readline()
        if not line:
            break
        m = LISTENING.search(line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError(f"chaosgate mock --api {api} did not start (binary: {BIN})")


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def openai_url():
    proc, url = _start("openai")
    yield url
    _stop(proc)


@pytest.fixture(scope="session")
def anthropic_url():
    proc, url = _start("anthropic")
    yield url
    _stop(proc)
