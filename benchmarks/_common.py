"""Helpers the benchmark scripts share: what machine and commit a figure was measured on, and servers."""

from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """Model name from /proc/cpuinfo, with family/model/clock when the name alone is vague."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    name = fields.get("model name", platform.processor() or "unknown")
    extra = [f"family {fields['cpu family']}" if "cpu family" in fields else ""]
    extra.append(f"model {fields['model']}" if "model" in fields else "")
    extra.append(f"{float(fields['cpu MHz']):.0f} MHz" if "cpu MHz" in fields else "")
    details = ", ".join(e for e in extra if e)
    return f"{name} ({details})" if details else name


def service_revision() -> str:
    """The commit measured, and whether ``service/`` had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "service"], cwd=ROOT, capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"commit {head}" + (" + uncommitted changes in service/" if dirty else "")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, on ``host`` (loopback by default)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a server's log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
