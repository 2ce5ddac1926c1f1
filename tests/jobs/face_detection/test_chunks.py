"""Chunks as values: their one-object format, and planning which runs of chunks are still to make."""

from __future__ import annotations

import pytest

from jobs.face_detection.chunks import (
    ChunkResult,
    InputChunks,
    SourceFacts,
    chunk_record_name,
    chunk_start_frame,
    missing_spans,
    parse_chunk_record_name,
    split_span,
)


def chunk(index: int = 3) -> ChunkResult:
    return ChunkResult(
        name="clip.v2 ü", fingerprint="0123456789abcdef01234567", index=index, frames=4, faces=5,
        frames_with_faces=3, max_faces=2, seconds=0.25, end_of_stream=False, source_frames=0,
        source=SourceFacts(640, 480, 29.97, 100, 320, 240), detections=b'{"frame": 12}\n',
        video=b"\x00\x00\x00\x01\x67segment",
    )


def test_a_chunk_round_trips_through_its_bytes_and_a_torn_one_is_refused() -> None:
    original = chunk()
    data = original.to_bytes()
    assert ChunkResult.from_bytes(data) == original
    with pytest.raises(ValueError, match="torn"):
        ChunkResult.from_bytes(data[:-1])
    with pytest.raises(ValueError, match="not a face chunk"):
        ChunkResult.from_bytes(b"<html>quota exceeded</html>")


def test_record_names_carry_input_fingerprint_and_index() -> None:
    name = chunk_record_name("clip.v2 ü", "0123456789abcdef", 12)
    assert name == "clip.v2 ü.01234567.00012.chunk" == chunk(12).record_name
    assert parse_chunk_record_name(name) == ("clip.v2 ü", "01234567", 12)
    assert parse_chunk_record_name("clip.v2 ü.summary.json") is None
    assert chunk_start_frame(3, frames_per_chunk=8, frame_step=2) == 48


def test_missing_spans_from_nothing_reads_to_the_end() -> None:
    assert missing_spans(InputChunks(frozenset(), None), expected_chunks=5) == [(0, None)]
    assert missing_spans(InputChunks(frozenset(), None), expected_chunks=0) == [(0, None)]


def test_missing_spans_fill_holes_and_keep_the_tail_open_until_the_end_is_known() -> None:
    # chunks 0, 1, 4 made (e.g. by two Ray workers), the end not reached yet, 7 chunks expected
    state = InputChunks(frozenset({0, 1, 4}), None)
    assert missing_spans(state, expected_chunks=7) == [(2, 4), (5, None)]
    assert not state.complete
    # the end found in chunk 5: only the holes before it are left
    ended = InputChunks(frozenset({0, 1, 4, 5}), 5)
    assert missing_spans(ended, expected_chunks=7) == [(2, 4)]
    assert InputChunks(frozenset(range(6)), 5).complete
    # a video longer than its container says: the open tail goes on after the expected chunks
    assert missing_spans(InputChunks(frozenset(range(7)), None), expected_chunks=7) == [(7, None)]


def test_split_span_gives_near_equal_contiguous_runs() -> None:
    assert split_span(0, 10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert split_span(4, 6, 5) == [(4, 5), (5, 6)]
    assert split_span(2, 3, 1) == [(2, 3)]
