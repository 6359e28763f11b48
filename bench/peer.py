"""Running the simglucose peer: a script in the bench environment (``.venv-bench``, where
simglucose's pins live apart from ours), one JSON result on its last line of output."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# absolute (the peer runs in a scratch directory) but not resolved: a venv's python is a symlink
PEER_PYTHON = Path(
    os.environ.get("BENCH_PEER_PYTHON", ROOT / ".venv-bench" / "bin" / "python")
).absolute()


def run_peer(
    args: list[str], timeout_s: float, stdin: str | None = None
) -> tuple[dict | None, str]:
    """``PEER_PYTHON args`` in a scratch directory; its JSON result, or ``None`` and why not."""
    if not PEER_PYTHON.exists():
        return None, (
            f"{PEER_PYTHON} not found: the bench environment is missing "
            "(`make bench` creates it; see its output for why it could not)"
        )
    with tempfile.TemporaryDirectory(prefix="cgmsim-bench-") as scratch:
        env = {**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": scratch}
        env.pop("PYTHONPATH", None)
        try:
            done = subprocess.run(
                [str(PEER_PYTHON), *args],
                input=stdin,
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"simglucose did not finish in {timeout_s:g} s"
        except OSError as error:
            return None, f"could not start {PEER_PYTHON}: {error}"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return None, f"simglucose exited {done.returncode}: {tail}"
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), ""
    except (IndexError, json.JSONDecodeError):
        return None, f"simglucose printed no result: {done.stdout.strip()[-200:]!r}"
