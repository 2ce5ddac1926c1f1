from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.errors import LeaseHeldError
from orchestrator.core.lease import Lease, LeaseInfo, boot_id, read_lease, staleness
from orchestrator.core.paths import JobPaths
from orchestrator.core.session import hostname


def paths_in(tmp_path: Path) -> JobPaths:
    paths = JobPaths(home=tmp_path / "home", local=tmp_path / "w")
    paths.home.mkdir()
    return paths


def lease_info(**kw) -> LeaseInfo:
    base = dict(token="t", session_id="s1", host="other-vm", boot_id="b", pid=1, acquired=0.0, heartbeat=0.0)
    return LeaseInfo(**{**base, **kw})


def test_other_host_is_stale_only_after_ttl() -> None:
    lease = lease_info(heartbeat=1000.0)
    assert staleness(lease, now=1500.0, ttl=600, host="me", this_boot="x") is None
    assert "heartbeat stopped 700s ago" in staleness(lease, now=1700.0, ttl=600, host="me", this_boot="x")


def test_same_machine_dead_process_is_stale_at_once() -> None:
    lease = lease_info(host="me", boot_id="boot1", pid=424242, heartbeat=1000.0)
    why = staleness(lease, now=1001.0, ttl=600, host="me", this_boot="boot1", alive=lambda pid: False)
    assert why is not None and "424242" in why
    assert staleness(lease, now=1001.0, ttl=600, host="me", this_boot="boot1", alive=lambda pid: True) is None


def test_same_host_after_reboot_is_stale() -> None:
    lease = lease_info(host="me", boot_id="old", heartbeat=1000.0)
    assert "rebooted" in staleness(lease, now=1001.0, ttl=600, host="me", this_boot="new")


def test_fresh_lease_of_a_live_process_refuses_naming_the_holder(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        info = lease_info(host=hostname(), boot_id=boot_id(), pid=holder.pid, session_id="holder-session",
                          heartbeat=__import__("time").time())
        atomic_write_json(paths.lease, asdict(info))
        with pytest.raises(LeaseHeldError, match=f"holder-session.*pid {holder.pid}.*--takeover"):
            Lease.acquire(paths, "me", ttl=600)
        lease, previous, why = Lease.acquire(paths, "me", ttl=600, takeover=True)
        assert previous is not None and previous.session_id == "holder-session" and why == "forced with --takeover"
        assert read_lease(paths.lease).session_id == "me"
        lease.release()
        assert not paths.lease.exists()
    finally:
        holder.kill()


def test_heartbeat_notices_a_takeover(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    lease, _, _ = Lease.acquire(paths, "first", ttl=600)
    assert lease.renew()
    Lease.acquire(paths, "second", ttl=600, takeover=True)
    assert not lease.renew()
    assert "second" in (lease.lost or "")
    lease.release()  # must not delete the new holder's lease
    assert read_lease(paths.lease).session_id == "second"


def test_torn_lease_file_does_not_block(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    paths.lease.write_text('{"token": "abc", "sess')
    lease, previous, _ = Lease.acquire(paths, "me", ttl=600)
    assert previous is None and lease.info.pid == os.getpid()
