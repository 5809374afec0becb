"""Fixtures for the OpenAI and Anthropic SDK end-to-end tests.

Each test starts its own `keyrelay-mock` (the project's mock upstream, speaking both the
OpenAI and the Anthropic API) and one or more `keyrelay` proxies in front of it, as
subprocesses on ephemeral loopback ports (`--port 0`; the chosen address is read from the
first stdout line). Everything a test starts is killed at its teardown, so counters such as
`/_mock/hits` start at zero.

The binaries come from `KEYRELAY_BIN_DIR` (default `target/debug`, relative to the repo
root); nothing here builds them.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Iterable, Sequence

import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 15.0
CLIENT_TOKEN = "client-token"

# Environment variables keyrelay reads as defaults for its options; a developer's own
# settings must not leak into the tests.
_KEYRELAY_ENV = (
    "LLM_KEYS",
    "LLM_KEYS_FILE",
    "KEYRELAY_HOST",
    "KEYRELAY_PORT",
    "KEYRELAY_CA_FILE",
    "KEYRELAY_CONNECT_TIMEOUT",
    "KEYRELAY_FIRST_BYTE_TIMEOUT",
    "KEYRELAY_MAX_BODY",
    "KEYRELAY_TOKENS",
    "KEYRELAY_TOKENS_FILE",
    "KEYRELAY_ADMIN_TOKEN",
    "KEYRELAY_TLS_CERT",
    "KEYRELAY_TLS_KEY",
    "KEYRELAY_ALLOW_UNAUTHENTICATED",
)


def bin_dir() -> Path:
    d = Path(os.environ.get("KEYRELAY_BIN_DIR", "target/debug"))
    return d if d.is_absolute() else REPO_ROOT / d


def binary(name: str) -> Path:
    path = bin_dir() / name
    if not path.is_file():
        pytest.fail(
            f"{path} does not exist: build it first (cargo build) or set KEYRELAY_BIN_DIR",
            pytrace=False,
        )
    return path


# Direct connections only: a proxy configured in the environment must not see loopback traffic.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Process:
    """A subprocess whose first stdout line announces `... listening on URL`."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None):
        self.name = name
        self.argv = list(argv)
        # stderr (logs) goes to a file, so a chatty process can never block on a full pipe.
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=REPO_ROOT,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        # Drains stdout for the whole life of the process (keyrelay prints a multi-line banner).
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        self.url = self._await_listening_url()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _await_listening_url(self) -> str:
        try:
            line = self._lines.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            self._fail(f"printed no address within {STARTUP_TIMEOUT_S} s")
        if line is None:
            self._fail("exited before printing its address")
        text = line.decode("utf-8", "replace").strip()
        m = re.search(r"listening on (https?://127\.0\.0\.1:\d+\S*)", text)
        if not m:
            self._fail(f"unexpected first stdout line {text!r}")
        return m.group(1).rstrip("/")

    def _fail(self, what: str) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        message = f"{self.name} {what}\n{self.describe()}"
        self.stop()
        pytest.fail(message, pytrace=False)

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def describe(self) -> str:
        return (
            f"  command: {' '.join(self.argv)}\n"
            f"  exit code: {self.proc.poll()}\n"
            f"  stderr:\n{self.stderr_text()}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        # The process is gone, so the pump reaches end of file; close the pipe after it.
        self._pump_thread.join(timeout=5)
        if self.proc.stdout is not None and not self._pump_thread.is_alive():
            self.proc.stdout.close()
        self._stderr.close()


class Mock(Process):
    """A running keyrelay-mock. `base_url` ends in /v1, as an OpenAI base URL does."""

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def hits(self) -> dict[str, int]:
        """Requests the mock received per bearer key (`GET /_mock/hits`, at the host root)."""
        with _opener.open(f"{self.root}/_mock/hits", timeout=5) as resp:
            return json.loads(resp.read())

    def key(self, api_key: str, model: str, **extra: object) -> dict:
        """An `LLM_KEYS` entry for an OpenAI key served by this mock."""
        return {
            "api_key": api_key,
            "model": model,
            "provider": "openai",
            "base_url": self.base_url,
            **extra,
        }

    def anthropic_key(self, api_key: str, model: str, **extra: object) -> dict:
        """An `LLM_KEYS` entry for an Anthropic key served by this mock (base URL: host root)."""
        return {
            "api_key": api_key,
            "model": model,
            "provider": "anthropic",
            "base_url": self.root,
            **extra,
        }


class Relay(Process):
    """A running keyrelay."""

    def client(self, **kwargs: object) -> openai.OpenAI:
        options: dict = {
            "base_url": f"{self.url}/v1",
            "api_key": CLIENT_TOKEN,
            "max_retries": 0,
            "timeout": CLIENT_TIMEOUT_S,
        }
        options.update(kwargs)
        return openai.OpenAI(**options)

    def anthropic_client(self, **kwargs: object):
        """The official Anthropic SDK pointed at keyrelay (its base URL is the host root)."""
        import anthropic

        options: dict = {
            "base_url": self.url,
            "api_key": CLIENT_TOKEN,
            "max_retries": 0,
            "timeout": CLIENT_TIMEOUT_S,
        }
        options.update(kwargs)
        return anthropic.Anthropic(**options)


@pytest.fixture
def start_mock():
    """Starts a keyrelay-mock: `start_mock(chunk_delay_ms=None) -> Mock`."""
    started: list[Process] = []

    def start(chunk_delay_ms: int | None = None) -> Mock:
        argv = [str(binary("keyrelay-mock")), "--host", "127.0.0.1", "--port", "0"]
        if chunk_delay_ms is not None:
            argv += ["--chunk-delay-ms", str(chunk_delay_ms)]
        mock = Mock("keyrelay-mock", argv)
        started.append(mock)
        return mock

    yield start
    for p in reversed(started):
        p.stop()


@pytest.fixture
def mock(start_mock) -> Mock:
    return start_mock()


@pytest.fixture
def start_keyrelay():
    """Starts keyrelay with an `LLM_KEYS` list, extra command-line arguments and extra
    environment: `start_keyrelay(keys, extra_args=(), extra_env=None) -> Relay`."""
    started: list[Process] = []

    def start(
        keys: list[dict], extra_args: Iterable[str] = (), extra_env: dict[str, str] | None = None
    ) -> Relay:
        env = {k: v for k, v in os.environ.items() if k not in _KEYRELAY_ENV}
        env["LLM_KEYS"] = json.dumps(keys)
        env.update(extra_env or {})
        env.setdefault("RUST_LOG", "keyrelay=info")
        argv = [str(binary("keyrelay")), "--host", "127.0.0.1", "--port", "0", *extra_args]
        relay = Relay("keyrelay", argv, env=env)
        started.append(relay)
        return relay

    yield start
    for p in reversed(started):
        p.stop()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on: bound, read, then closed again."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
