"""Waiting for a server the tests started on loopback (JupyterLab, moto's S3)."""

from __future__ import annotations

import subprocess
import time
import urllib.request


def wait_until_answering(url: str, server: subprocess.Popen, timeout_s: float) -> bool:
    """Poll ``url`` until it answers; False once ``server`` exited or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return True
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.2)
