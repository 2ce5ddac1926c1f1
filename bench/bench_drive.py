"""Benchmark: DriveStore transfers, and checkpoint publishing, through the loopback Drive server.

    python bench/bench_drive.py [--size-mb 256] [--chunk-mb 8] [--rounds 3]
    python bench/bench_drive.py --publish [--checkpoints 20] [--size-kb 300] [--baseline-ref REF]

``--publish``: live sync of checkpoints (``JobCheckpoints``: sync thread, manifest, retention keep_last=3, the
default 8 MiB chunk and poll settings) into the loopback server, for this tree and for the tree at git
``--baseline-ref`` (extracted with ``git archive``; both use this tree's server), each in its own process, in the
same run. Per checkpoint it reports the requests the server logged while it was published (steady state: after
the first three, when folders exist and retention deletes one per publish) and the sync lag (file renamed into
the output folder -> recorded in the manifest), with ``--latency-ms`` added to every request as Drive's round
trip (loopback answers in about a millisecond; Drive in about 100 ms).

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


PUBLISHER = r"""
import json, os, statistics, sys, tempfile, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
count, size, latency = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
from checkpoints.job_checkpoints import JobCheckpoints
from orchestrator.core.store_spec import RetentionSpec
from tests.checkpoints.drive_server import DriveFake, loopback_store

fake = DriveFake().start()
fake.latency = latency
store = loopback_store(fake, fake.add_folder("bench"), chunk_size=8 << 20)
published = threading.Event()
with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "out"
    out.mkdir()
    cps = JobCheckpoints(store, out, patterns=("ckpt-*.pt",), retention=RetentionSpec(keep_last=3))
    cps.resume()
    cps.start_sync(on_published=lambda record: published.set())
    rows = []
    for i in range(1, count + 1):
        (out / "tmp.part").write_bytes(os.urandom(size))
        before = len(fake.requests)
        published.clear()
        t0 = time.perf_counter()
        os.replace(out / "tmp.part", out / f"ckpt-{i:04d}.pt")
        assert published.wait(120), "not published"
        lag = time.perf_counter() - t0
        time.sleep(0.05)  # retention deletes after the manifest write
        ops = [op for op, _ in fake.requests[before:]]
        rows.append({"requests": len(ops), "lag": lag, "ops": ops})
    cps.stop_sync(flush_timeout=60)
fake.stop()
print(json.dumps(rows))
"""


def baseline_tree(ref: str, dest: Path) -> Path:
    """The repository at ``ref`` under ``dest``, with this tree's loopback server (the same Drive for both)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for name in ("drive_server.py", "drive_protocol.py"):
        (dest / "tests" / "checkpoints" / name).write_bytes((REPO / "tests" / "checkpoints" / name).read_bytes())
    return dest


def publish_bench(opts: argparse.Namespace) -> None:
    trees = {"this tree": REPO}
    with tempfile.TemporaryDirectory() as tmp:
        if opts.baseline_ref:
            trees = {f"baseline {opts.baseline_ref}": baseline_tree(opts.baseline_ref, Path(tmp)), **trees}
        results = {}
        for label, root in trees.items():
            out = subprocess.run(
                [sys.executable, "-c", PUBLISHER, str(root), str(opts.checkpoints), str(opts.size_kb * 1000),
                 str(opts.latency_ms / 1000)],
                check=True, capture_output=True, text=True,
            )
            results[label] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{opts.checkpoints} checkpoints of {opts.size_kb} KB, live sync, keep_last=3, 8 MiB chunks, "
          f"{opts.latency_ms} ms per request")
    print("| code | requests per publish (steady state, median / max) | first publish | sync lag median | max |")
    print("|---|---|---|---|---|")
    for label, rows in results.items():
        steady = rows[3:]
        reqs = [r["requests"] for r in steady]
        lags = [r["lag"] for r in steady]
        print(f"| {label} | {statistics.median(reqs):.0f} / {max(reqs)} | {rows[0]['requests']} | "
              f"{statistics.median(lags):.2f} s | {max(lags):.2f} s |")
    for label, rows in results.items():
        ops: dict[str, int] = {}
        for op in rows[-1]["ops"]:
            ops[op] = ops.get(op, 0) + 1
        print(f"{label}, last publish: " + ", ".join(f"{n} {op}" for op, n in sorted(ops.items())))
    if len(results) == 2:
        base_rows, my_rows = (rows[3:] for rows in results.values())
        req_ratio = statistics.median(r["requests"] for r in my_rows) / statistics.median(r["requests"] for r in base_rows)
        lag_ratio = statistics.median(r["lag"] for r in my_rows) / statistics.median(r["lag"] for r in base_rows)
        print(f"this tree / baseline: requests x{req_ratio:.2f}, sync lag x{lag_ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--chunk-mb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publish", action="store_true", help="measure checkpoint publishing (see above)")
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--size-kb", type=int, default=300)
    parser.add_argument("--baseline-ref", default="", help="git ref to compare with (e.g. main)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="round trip added per request")
    opts = parser.parse_args()
    if opts.publish:
        publish_bench(opts)
        return
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
