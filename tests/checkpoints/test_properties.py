"""Properties of the pure decisions: retention plans and checkpoint choice."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoints.discovery import Candidate, Judged, checkpoint_rows
from checkpoints.manifest import Manifest, ManifestRecord, checkpoint_key
from checkpoints.retention import RetentionSpec, plan_retention

counters = st.lists(st.one_of(st.none(), st.integers(0, 5000)), min_size=1, max_size=40)


def _manifest(values: list[int | None], tagged: set[int]) -> Manifest:
    manifest = Manifest()
    for seq, counter in enumerate(values, start=1):
        tags = ("final",) if seq in tagged else ()
        manifest = manifest.add(
            ManifestRecord(
                name="w",
                key=checkpoint_key("w", seq, 1000),
                counter=counter,
                size=1,
                sha256="",
                created=float(-seq),
                tags=tags,
                seq=seq,
            )
        )
    return manifest


@settings(max_examples=200, deadline=None)
@given(
    values=counters,
    keep_last=st.integers(1, 6),
    every=st.one_of(st.none(), st.integers(1, 1000)),
    tagged=st.sets(st.integers(1, 40), max_size=3),
)
def test_retention_plan_invariants(
    values: list[int | None], keep_last: int, every: int | None, tagged: set[int]
) -> None:
    manifest = _manifest(values, tagged)
    policy = RetentionSpec(keep_last=keep_last, milestone_every=every)
    plan = plan_retention(manifest, policy)
    ordered = manifest.newest_first()
    deleted = {r.key for r in plan.delete}
    assert deleted.isdisjoint(plan.keep) and deleted | set(plan.keep) == {r.key for r in manifest.records}
    assert {r.key for r in ordered[:keep_last]} <= set(plan.keep)  # the newest N by counter survive
    assert all("final" not in r.tags for r in plan.delete)
    if every:
        kept_milestones = {manifest.get(k).counter for k in plan.keep}  # type: ignore[union-attr]
        for r in ordered:
            if r.counter and r.counter % every == 0:
                assert r.counter in kept_milestones


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 100)), st.booleans(), st.booleans(), st.floats(0, 1e6)),
        min_size=0,
        max_size=20,
    )
)
def test_resume_row_is_the_valid_candidate_with_the_highest_counter(
    items: list[tuple[int | None, bool, bool, float]],
) -> None:
    judged = [
        Judged(
            Candidate(
                name=f"c{i}",
                where="local" if local else "store",
                counter=counter,
                size=1,
                modified=mtime,
                path=Path(f"/x/c{i}"),
            ),
            ok,
        )
        for i, (counter, ok, local, mtime) in enumerate(items)
    ]
    rows = checkpoint_rows(judged, now=2e6)
    resume = [r for r in rows if r.resume]
    valid = [j for j in judged if j.ok]
    assert len(resume) == (1 if valid else 0)
    if valid:
        best = max((j.candidate.counter for j in valid if j.candidate.counter is not None), default=None)
        assert resume[0].valid and resume[0].counter == best  # never chosen by mtime over a higher counter
