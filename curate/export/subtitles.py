"""A recording's segments as subtitles (SubRip ``.srt``, WebVTT ``.vtt``): play the programme in any video player
with the segments on screen to see what a variant kept. A cue's text is ``[speaker] text``, or the segment id
when the segment has no text."""

from __future__ import annotations

from typing import Any


def timestamp(seconds: float, sep: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``sep="."``, ``HH:MM:SS.mmm`` (WebVTT)."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def cue_text(row: dict[str, Any]) -> str:
    text = " ".join(str(row.get("text") or "").split()) or f"({row['segment_id']})"
    return f"[{row['speaker']}] {text}" if row.get("speaker") else text


def srt(rows: list[dict[str, Any]]) -> str:
    """SubRip cues, numbered from 1, in time order."""
    rows = sorted(rows, key=lambda r: (r["start_s"], r["end_s"]))
    return "".join(
        f"{i}\n{timestamp(r['start_s'])} --> {timestamp(r['end_s'])}\n{cue_text(r)}\n\n" for i, r in enumerate(rows, 1)
    )


def vtt(rows: list[dict[str, Any]]) -> str:
    """WebVTT: the header, then one cue per segment (its id as the cue identifier), in time order."""
    rows = sorted(rows, key=lambda r: (r["start_s"], r["end_s"]))
    cues = "".join(
        f"{r['segment_id']}\n{timestamp(r['start_s'], '.')} --> {timestamp(r['end_s'], '.')}\n"
        f"{cue_text(r).replace('-->', '->')}\n\n"
        for r in rows
    )
    return "WEBVTT\n\n" + cues


__all__ = ["cue_text", "srt", "timestamp", "vtt"]
