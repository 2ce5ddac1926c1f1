"""Benchmark: DriveStore upload/download through the loopback Drive server vs the bare protocol, same run.

    python bench/bench_drive.py [--size-mb 256] [--chunk-mb 8] [--rounds 3]

The loopback Drive v3 server (tests/checkpoints/drive_server.py) runs in its own process. Each round, in fresh
client subprocesses (alternating order), it times:

  * ``raw upload``:   the same resumable protocol spoken with bare ``http.client`` (POST for a session, then PUT
                      chunks with Content-Range), reading the file chunk by chunk - the floor for the protocol;
  * ``store upload``: ``DriveStore.upload`` (google-api-python-client, MD5 of the source, verify, publish);
  * ``raw download``: ranged GETs (``alt=media``, ``Range``) written to a file;
  * ``store download``: ``DriveStore.download`` (ranged chunks, MD5 check, temp file + fsync + rename).

It reports median throughput, the ratios store/raw, and each client's peak extra memory (VmHWM after the
transfer minus VmHWM after imports, from /proc/self/status). The point is overhead and bounded memory of the
client (about one chunk in flight), not Drive's real throughput, which the network decides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SERVER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.checkpoints.drive_server import DriveFake
fake = DriveFake().start()
print(fake.root_url, fake.add_folder("bench"), flush=True)
sys.stdin.read()  # until the parent closes our stdin
"""

CLIENT = r"""
import hashlib, http.client, json, os, sys, time
from pathlib import Path
from urllib.parse import urlsplit
sys.path.insert(0, sys.argv[1])
mode, root, folder, src, dest, chunk = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

from checkpoints.drive_store import DriveStore
from tests.checkpoints.drive_server import loopback_store
from tests.checkpoints.drive_server import DriveFake  # noqa: F401  (same imports in every mode)
url = urlsplit(root)

class Root:  # loopback_store only needs root_url
    root_url = root

before = hwm_kb()
t0 = time.perf_counter()
if mode == "store_upload":
    store = loopback_store(Root, folder, chunk_size=chunk)
    entry = store.upload(Path(src), "bench/ckpt.weights")
    out = {"file_id": entry.file_id}
elif mode == "store_download":
    store = loopback_store(Root, folder, chunk_size=chunk)
    store.download("bench/ckpt.weights", Path(dest))
    out = {}
elif mode == "raw_upload":
    size = os.path.getsize(src)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    meta = json.dumps({"name": "raw", "parents": [folder]}).encode()
    conn.request("POST", "/upload/drive/v3/files?uploadType=resumable", meta,
                 {"Content-Type": "application/json", "X-Upload-Content-Length": str(size)})
    resp = conn.getresponse(); resp.read()
    loc = urlsplit(resp.getheader("Location"))
    with open(src, "rb") as fh:
        pos = 0
        while pos < size:
            data = fh.read(chunk)
            conn.request("PUT", f"{loc.path}?{loc.query}", data,
                         {"Content-Range": f"bytes {pos}-{pos + len(data) - 1}/{size}"})
            resp = conn.getresponse(); body = resp.read()
            pos += len(data)
    out = {"file_id": json.loads(body)["id"]}
elif mode == "raw_download":
    file_id = sys.argv[8]
    conn = http.client.HTTPConnection(url.hostname, url.port)
    with open(dest, "wb") as fh:
        pos = 0
        while True:
            conn.request("GET", f"/drive/v3/files/{file_id}?alt=media", headers={"Range": f"bytes={pos}-{pos + chunk - 1}"})
            resp = conn.getresponse(); data = resp.read()
            fh.write(data)
            pos += len(data)
            total = int(resp.getheader("Content-Range").rsplit("/", 1)[1])
            if pos >= total:
                break
        fh.flush(); os.fsync(fh.fileno())
    out = {}
out.update(seconds=time.perf_counter() - t0, extra_peak_kb=hwm_kb() - before)
print(json.dumps(out))
"""


def run_client(mode: str, root: str, folder: str, src: Path, dest: Path, chunk: int, extra: str = "") -> dict:
    args = [sys.executable, "-c", CLIENT, str(REPO), mode, root, folder, str(src), str(dest), str(chunk)]
    out = subprocess.run(args + ([extra] if extra else []), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--chunk-mb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    size, chunk = opts.size_mb << 20, opts.chunk_mb << 20
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(REPO)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        root, folder = server.stdout.readline().split()
        results: dict[str, list[dict]] = {
            k: [] for k in ("raw_upload", "store_upload", "raw_download", "store_download")
        }
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src.weights"
            with open(src, "wb") as fh:
                fh.writelines(os.urandom(1 << 20) for _ in range(opts.size_mb))
            for rnd in range(opts.rounds):
                order = ["raw", "store"] if rnd % 2 == 0 else ["store", "raw"]
                raw_id = ""
                for who in order:
                    res = run_client(f"{who}_upload", root, folder, src, Path(tmp) / "x", chunk)
                    results[f"{who}_upload"].append(res)
                    if who == "raw":
                        raw_id = res["file_id"]
                for who in order:
                    dest = Path(tmp) / f"{who}.out"
                    res = run_client(f"{who}_download", root, folder, src, dest, chunk, raw_id if who == "raw" else "")
                    assert dest.stat().st_size == size
                    dest.unlink()
                    results[f"{who}_download"].append(res)
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(10)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    peak = {k: max(r["extra_peak_kb"] for r in v) / 1024 for k, v in results.items()}
    print(f"{opts.size_mb} MB, chunk {opts.chunk_mb} MB, {opts.rounds} rounds (median)")
    print("| measurement | median time | throughput | client peak extra memory |")
    print("|---|---|---|---|")
    for key, seconds in med.items():
        print(f"| {key.replace('_', ' ')} | {seconds:.3f} s | {opts.size_mb / seconds:.0f} MB/s | {peak[key]:.1f} MB |")
    for op in ("upload", "download"):
        print(f"{op}: store / raw time ratio = {med[f'store_{op}'] / med[f'raw_{op}']:.2f}")


if __name__ == "__main__":
    main()
