"""Fixtures for the SDK conformance suite: one `chaosgate mock` per API for the whole
session, on 127.0.0.1 with a port the OS picks, serving the healthy profile with seed 1.

CHAOSGATE_BIN overrides the binary (default: target/debug/chaosgate at the repo root).
"""
import collections
import os
import pathlib
import re
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.path.abspath(os.environ.get("CHAOSGATE_BIN") or ROOT / "target" / "debug" / "chaosgate")
PROFILE = ROOT / "fault-profiles" / "healthy.toml"
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0


class Mock:
    """A running `chaosgate mock`; its output is drained on a thread for the whole run,
    so a chatty mock can never block on a full pipe."""

    def __init__(self, api: str):
        self.api = api
        self.url = None
        self.tail = collections.deque(maxlen=50)
        self._ready = threading.Event()
        cmd = [
            BIN, "mock",
            "--api", api,
            "--listen", "127.0.0.1:0",
            "--profile", str(PROFILE),
            "--seed", "1",
        ]
        try:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        except FileNotFoundError:
            pytest.exit(
                f"chaosgate binary not found at {BIN}: run `cargo build` or set CHAOSGATE_BIN",
                returncode=2,
            )
        self._reader = threading.Thread(target=self._drain, name=f"chaosgate-{api}-stdout", daemon=True)
        self._reader.start()

    def _drain(self):
        for line in self.proc.stdout:
            self.tail.append(line.rstrip("\n"))
            if self.url is None:
                m = LISTENING.search(line)
                if m:
                    self.url = m.group(1)
                    self._ready.set()
        self._ready.set()  # EOF: the process is gone; wake the waiter

    def wait_ready(self):
        self._ready.wait(START_TIMEOUT_S)
        if self.url is None:
            code = self.proc.poll()
            self.stop()
            why = f"exited with code {code}" if code is not None else f"printed no {LISTENING.pattern!r} within {START_TIMEOUT_S:.0f} s"
            output = "\n".join(self.tail) or "(no output)"
            raise RuntimeError(f"`chaosgate mock --api {self.api}` ({BIN}) {why}. Its output:\n{output}")
        return self.url

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=STOP_GRACE_S)


def _serve(api):
    mock = Mock(api)
    try:
        yield mock.wait_ready()
    finally:
        mock.stop()


@pytest.fixture(scope="session")
def openai_url():
    """Base URL (no /v1) of the session's `chaosgate mock --api openai`."""
    yield from _serve("openai")


@pytest.fixture(scope="session")
def anthropic_url():
    """Base URL of the session's `chaosgate mock --api anthropic`."""
    yield from _serve("anthropic")
