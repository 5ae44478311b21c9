"""Several worker processes behind one metrics endpoint: ``uvicorn --workers``, ``PROMETHEUS_MULTIPROC_DIR`` and
``slipstream sidecar``, started (and stopped, with Ctrl+C) together.

    python examples/multiworker.py --workers 4 --port 8000 --metrics-port 9464

It serves examples/fastapi_app.py. What it runs, as you would in a unit file or a container entrypoint:

    export PROMETHEUS_MULTIPROC_DIR=/run/app/metrics          # before any worker imports prometheus_client
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"; mkdir -p "$PROMETHEUS_MULTIPROC_DIR"   # empty at every start
    python examples/fastapi_app.py --create-database          # once, before the workers (like a migration)
    slipstream sidecar --port 9464 &                          # /metrics merged, /healthz, the live page at /
    uvicorn --app-dir examples fastapi_app:app --workers 4 --port 8000
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

EXAMPLES = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=9464)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", help="the multiprocess directory (default: a new temporary one); it is emptied")
    args = parser.parse_args()

    run = Path(tempfile.mkdtemp(prefix="slipstream-workers-"))
    metrics_dir = Path(args.dir) if args.dir else run / "metrics"
    # Files left by an earlier run would be added to this run's counters.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    app_env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    app_env.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{run}/books.db")
    subprocess.run([sys.executable, str(EXAMPLES / "fastapi_app.py"), "--create-database"], env=app_env, check=True)

    env = {**app_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    sidecar_command = [sys.executable, "-m", "slipstream.cli", "sidecar", "--dir", str(metrics_dir)]
    sidecar_command += ["--host", args.host, "--port", str(args.metrics_port)]
    workers_command = [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), "fastapi_app:app"]
    workers_command += ["--workers", str(args.workers), "--host", args.host, "--port", str(args.port)]
    workers_command += ["--log-level", "warning"]
    processes = [subprocess.Popen(sidecar_command, env=env), subprocess.Popen(workers_command, env=env)]

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    base, metrics = f"http://{args.host}:{args.port}", f"http://{args.host}:{args.metrics_port}"
    print(
        f"{args.workers} workers on {base} (try {base}/books), writing to {metrics_dir}\n"
        f"sidecar: {metrics}/metrics merged from every worker, {metrics}/healthz, the live page at {metrics}/\n"
        "Ctrl+C stops both.",
        flush=True,
    )
    status = 0
    while not stopping:
        exited = [process for process in processes if process.poll() is not None]
        if exited:
            status = exited[0].returncode or 1
            print(f"a process stopped (exit status {exited[0].returncode}); stopping the others", file=sys.stderr)
            break
        time.sleep(0.2)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    shutil.rmtree(run, ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
