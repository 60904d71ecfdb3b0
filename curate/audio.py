"""Audio I/O: probe cheaply, decode any format ffmpeg reads to 16 kHz mono float32, read time ranges.

WAV/FLAC/OGG files that libsndfile can open are read with :mod:`soundfile`, which seeks, so reading
``[start_s, end_s)`` of a 3-hour FLAC decodes only that range. Everything else (mp3, mp4/aac, opus,
video containers, mislabelled files) goes through an ``ffmpeg`` pipe with an input-side seek.

A path may be an fsspec URL (``s3://``, ``gs://``, ``https://``; extra ``curate[storage]``): soundfile reads
it through a seekable fsspec file, ffmpeg reads ``http(s)`` itself and any other URL's bytes from its stdin.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.errors import CurateError, one_line

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
PROBE_TIMEOUT_S = 120.0  # reading a header never takes this long; a probe that does is killed
URL_BLOCK_BYTES = 1 << 22  # a ranged request reads this much (s3fs's 50 MB default would fetch it for a header)
SIGNED_URL_S = 6 * 3600  # a presigned object URL handed to ffmpeg stays valid this long
STDERR_TAIL_BYTES = 8192  # how much of ffmpeg's stderr is kept for an error message (it may print megabytes)


class AudioDecodeError(CurateError, RuntimeError):
    """A recording's audio cannot be read. Becomes a failure row; the run goes on."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class DecodeTimeout(AudioDecodeError):
    """Decoding ran past its watchdog limit and was killed. Becomes a failure row; the run goes on."""


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    num_channels: int
    codec: str
    header_duration_s: float | None = None  # what the header claims, when it claims more than the file holds
    content: str | None = None  # the file's content fingerprint (curate.catalog.content), set by ingest's probe


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(path: str | Path) -> bool:
    """True for an fsspec URL (``s3://bucket/key``); a URL stays a string, never a :class:`~pathlib.Path`."""
    return isinstance(path, str) and bool(_URL.match(path)) and not path.startswith("file://")


def local_path(path: str | Path) -> str | Path:
    """A catalog's audio path as curate opens it: a URL stays a string, anything else (``file://`` too) a Path."""
    return path if is_url(path) else Path(path.removeprefix("file://") if isinstance(path, str) else path)


def url_fs(url: str):
    """The fsspec filesystem and path of ``url``; a clear error naming the extra when its backend is missing."""
    try:
        import fsspec

        return fsspec.core.url_to_fs(url)
    except ImportError as e:
        raise RuntimeError(
            f"{url}: reading {url.split(':', 1)[0]}:// URLs needs fsspec and its backend ({e}); "
            "install them with `pip install 'curate[storage]'`"
        ) from None


def _ffmpeg_input(path: str | Path) -> str:
    """What ffmpeg opens: a local file or http(s) URL itself; an object it cannot seek in through a pipe breaks
    mp4/m4a (index at the end) and mp3 end trimming, so s3:// and gs:// become a presigned https URL, which
    ffmpeg reads with ranged requests; the bytes of any other URL are fed to its stdin (``pipe:0``)."""
    if not is_url(path) or path.startswith(("http://", "https://")):
        return str(path)
    fs, p = url_fs(path)
    try:
        return fs.sign(p, expiration=SIGNED_URL_S)
    except NotImplementedError:
        return "pipe:0"


def open_binary(path: str | Path):
    """``path`` (local or URL) opened for reading bytes."""
    if is_url(path):
        fs, p = url_fs(path)
        return fs.open(p, "rb", block_size=URL_BLOCK_BYTES)
    return open(path, "rb")


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is not installed: `apt-get install ffmpeg` (make demo/test do this for you)")
    return exe


def _check_file(path: str | Path) -> None:
    if is_url(path):
        try:
            fs, p = url_fs(path)
        except Exception as e:  # no such scheme, no backend for it, or one that connects when made (ftp, hdfs)
            why = f"unsupported or unreachable URL scheme {str(path).split('://', 1)[0]}://"
            raise AudioDecodeError(path, f"{why} ({type(e).__name__}: {one_line(e)})") from None
        try:
            size = fs.info(p).get("size")
        except FileNotFoundError:
            raise AudioDecodeError(path, "object not found") from None
        except Exception as e:  # a backend's own errors (no credentials, refused, unreachable): one failure row
            raise AudioDecodeError(path, f"cannot open it ({type(e).__name__}: {one_line(e)})") from None
        if size == 0:
            raise AudioDecodeError(path, "empty file (0 bytes)")
        return
    try:
        st = path.stat()  # not Path.exists(): it says False for a symlink loop or an unreadable directory
    except FileNotFoundError:
        raise AudioDecodeError(path, "file not found") from None
    except OSError as e:
        problem = "symlink loop (too many levels of symbolic links)" if e.errno == errno.ELOOP else e.strerror
        raise AudioDecodeError(path, f"cannot open it: {problem}") from None
    if not stat.S_ISREG(st.st_mode):
        raise AudioDecodeError(path, "not a regular file")
    if st.st_size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")


def _sf_info(path: str | Path):
    import soundfile as sf

    try:
        if is_url(path):
            with open_binary(path) as f:
                return sf.info(f)
        return sf.info(str(path))
    except Exception:  # libsndfile cannot open it: not an error yet, ffmpeg may
        return None


def _wav_claimed_frames(path: str | Path, info) -> int | None:
    """The frame count a WAV's ``data`` chunk header claims (libsndfile and ffprobe both quietly clamp it to
    what the file holds, so a header claiming 61 s over 30.7 s of audio would go unnoticed)."""
    import struct

    bytes_per_frame = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8, "PCM_U8": 1}
    width = bytes_per_frame.get(info.subtype)
    if width is None:
        return None
    with open_binary(path) as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return None if size in (0, 0xFFFFFFFF) else size // (width * info.channels)  # streamed wav
            f.seek(size + (size & 1), 1)


def probe(path: str | Path) -> AudioInfo:
    """Duration, native rate, channels and codec, from the header only (no decoding)."""
    path = local_path(path)
    _check_file(path)
    info = _sf_info(path)
    if info is not None and info.frames > 0:
        claimed = _wav_claimed_frames(path, info) if info.format.startswith("WAV") else None
        header_s = claimed / info.samplerate if claimed and claimed > info.frames else None
        return AudioInfo(
            info.frames / info.samplerate, int(info.samplerate), int(info.channels), info.subtype.lower(), header_s
        )
    exe = shutil.which("ffprobe")
    if exe is None:
        raise RuntimeError("ffprobe is not installed: `apt-get install ffmpeg`")
    entries = "stream=codec_name,sample_rate,channels,duration:format=duration"
    cmd = [exe, "-v", "error", "-select_streams", "a:0", "-show_entries", entries, "-of", "json", _ffmpeg_input(path)]
    diag: dict = {}
    try:  # the watchdog, stderr draining and (for an object-store URL) stdin feeding of a decode
        with _ffmpeg_process(cmd, path, PROBE_TIMEOUT_S, diag) as proc:
            stdout = proc.stdout.read().decode("utf-8", "replace")
    except DecodeTimeout:
        raise DecodeTimeout(path, f"ffprobe took longer than {PROBE_TIMEOUT_S:.0f} s and was killed") from None
    except AudioDecodeError as e:
        why = e.problem if e.problem.startswith("reading") else diag.get("last_error") or "ffprobe failed"
        raise AudioDecodeError(path, f"not readable audio ({why})") from None
    data = json.loads(stdout or "{}")
    streams = data.get("streams") or []
    if not streams:
        raise AudioDecodeError(path, "no audio stream")
    st = streams[0]
    dur = st.get("duration") or (data.get("format") or {}).get("duration")
    if dur in (None, "N/A"):
        raise AudioDecodeError(path, "duration unknown (damaged header?)")
    dur = float(dur)
    if dur <= 0:
        raise AudioDecodeError(path, "no audio samples")
    return AudioInfo(dur, int(st.get("sample_rate") or 0), int(st.get("channels") or 0), st.get("codec_name", "?"))


def _to_mono_16k(x: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = np.nan_to_num(np.ascontiguousarray(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if sr != target_sr:
        import soxr

        x = soxr.resample(x, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
    return x


class _StderrTail:
    """Drains a process's stderr on a thread, so the process never blocks writing it (a damaged file can make
    ffmpeg print megabytes of errors, far more than a pipe buffer holds), and keeps only its last bytes."""

    def __init__(self, pipe):
        self._pipe = pipe
        self._tail = b""
        self.total_bytes = 0
        self._thread = threading.Thread(target=self._drain, name="ffmpeg-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for chunk in iter(lambda: self._pipe.read1(65536), b""):
            self.total_bytes += len(chunk)
            self._tail = (self._tail + chunk)[-STDERR_TAIL_BYTES:]

    def last_line(self) -> str:
        self._thread.join(timeout=5)
        lines = self._tail.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""


def _feed(proc: subprocess.Popen, path: str, errors: list[BaseException]) -> None:
    """Copy an object's bytes into ffmpeg's stdin (a thread). ffmpeg closing it early (killed, or done with
    ``-t``) is no error; a failed read is, even when ffmpeg then exits 0 on the truncated input."""
    try:
        with open_binary(path) as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                proc.stdin.write(chunk)
    except (BrokenPipeError, ValueError):  # ValueError: stdin already closed
        pass
    except Exception as e:
        errors.append(e)
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass


@contextmanager
def _ffmpeg_process(
    cmd: list[str], path: str | Path, timeout_s: float | None, diagnostics: dict | None = None
) -> Iterator[subprocess.Popen]:
    """Run ffmpeg with stdout piped for the caller to read; stderr drained concurrently; killed by a watchdog
    after ``timeout_s`` seconds (``None``: no limit). On exit raises :class:`DecodeTimeout` if the watchdog
    fired, :class:`AudioDecodeError` if ffmpeg failed, and kills ffmpeg if the caller stopped reading early.
    An object-store URL is fed to ffmpeg's stdin by a thread (the command reads ``pipe:0``)."""
    piped = "pipe:0" in cmd
    stdin = subprocess.PIPE if piped else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin)
    err = _StderrTail(proc.stderr)
    feed_errors: list[BaseException] = []
    feeder = threading.Thread(target=_feed, args=(proc, path, feed_errors), name="ffmpeg-stdin", daemon=True)
    if piped:
        feeder.start()
    fired = threading.Event()

    def kill() -> None:
        if proc.poll() is None:
            fired.set()
            proc.kill()

    timer = threading.Timer(timeout_s, kill) if timeout_s is not None else None
    if timer:
        timer.daemon = True
        timer.start()
    finished = False
    try:
        yield proc
        finished = True
    finally:
        if timer:
            timer.cancel()
        if not finished and proc.poll() is None:
            proc.kill()
        rc = proc.wait()
        if piped:
            feeder.join(timeout=5)
        proc.stdout.close()
        last = err.last_line()
        for arg in cmd:  # never a presigned URL (a credential) in a message or failure row
            last = last.replace(arg, str(path)) if is_url(arg) and arg != str(path) else last
        proc.stderr.close()
        if diagnostics is not None:  # how much ffmpeg complained, even when it exits 0
            diagnostics.update(stderr_bytes=err.total_bytes, last_error=last)
    if fired.is_set():
        raise DecodeTimeout(path, f"decoding took longer than {timeout_s:.0f} s (watchdog) and was killed")
    if feed_errors:
        e = feed_errors[0]
        raise AudioDecodeError(path, f"reading it failed ({type(e).__name__}: {e})")
    if rc != 0:
        raise AudioDecodeError(path, f"ffmpeg could not decode it ({last or 'exit ' + str(rc)})")


def _pcm_out(sr: int, channels: int = 1) -> list[str]:
    """ffmpeg output arguments: the first audio stream as float32 at ``sr`` on stdout (mono, or interleaved)."""
    return ["-map", "0:a:0", "-ac", str(channels), "-ar", str(sr), "-f", "f32le", "-acodec", "pcm_f32le", "-"]


def _ffmpeg_pcm(
    path: str | Path, start_s: float, duration_s: float | None, sr: int, timeout_s: float | None, channels: int = 1
) -> np.ndarray:
    cmd = [_ffmpeg(), "-nostdin", "-v", "error"]
    if start_s > 0:
        cmd += ["-ss", f"{start_s:.6f}"]
    cmd += ["-i", _ffmpeg_input(path)]
    if duration_s is not None:
        cmd += ["-t", f"{duration_s:.6f}"]
    cmd += _pcm_out(sr, channels)
    with _ffmpeg_process(cmd, path, timeout_s) as proc:
        data = proc.stdout.read()
    x = np.frombuffer(data[: len(data) - len(data) % 4], dtype=np.float32).copy()
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def load(
    path: str | Path,
    start_s: float = 0.0,
    end_s: float | None = None,
    sr: int = SAMPLE_RATE,
    timeout_s: float | None = None,
) -> np.ndarray:
    """Decode ``[start_s, end_s)`` of ``path`` to mono float32 at ``sr`` (the whole file by default).
    ``timeout_s``: an ffmpeg decode running longer is killed (:class:`DecodeTimeout`)."""
    path = local_path(path)
    _check_file(path)
    if end_s is not None and end_s <= start_s:
        return np.zeros(0, dtype=np.float32)
    info = _sf_info(path)
    if info is not None:
        import soundfile as sf

        start = int(round(start_s * info.samplerate))
        stop = None if end_s is None else int(round(end_s * info.samplerate))
        try:
            with open_binary(path) as f:  # seekable, for a URL too: only the range is fetched
                x, native_sr = sf.read(f, start=start, stop=stop, dtype="float32", always_2d=True)
        except Exception as e:  # truncated or damaged file
            raise AudioDecodeError(path, f"decoding failed ({type(e).__name__}: {e})") from None
        return _to_mono_16k(x, native_sr, sr)
    dur = None if end_s is None else end_s - start_s
    return _ffmpeg_pcm(path, start_s, dur, sr, timeout_s)


def stream(
    path: str | Path,
    block_s: float = 60.0,
    sr: int = SAMPLE_RATE,
    timeout_s: float | None = None,
    diagnostics: dict | None = None,
) -> Iterator[np.ndarray]:
    """Decode a whole file as consecutive mono float32 blocks of ``block_s`` seconds: bounded memory.
    ``timeout_s``: the whole decode (including the caller's time between blocks) is killed after this many
    seconds and raises :class:`DecodeTimeout`. ``diagnostics`` (a dict) receives ``stderr_bytes`` and
    ``last_error``: what the decoder reported about damaged data."""
    path = local_path(path)
    _check_file(path)
    cmd = [_ffmpeg(), "-nostdin", "-v", "error", "-i", _ffmpeg_input(path), *_pcm_out(sr)]
    block_bytes = int(block_s * sr) * 4
    with _ffmpeg_process(cmd, path, timeout_s, diagnostics) as proc:
        while True:
            buf = proc.stdout.read(block_bytes)
            if not buf:
                break
            usable = len(buf) - len(buf) % 4
            yield np.frombuffer(buf[:usable], dtype=np.float32)


@dataclass(frozen=True)
class ScanResult:
    """What a full streaming decode found: the true length and signal problems."""

    decoded_duration_s: float
    nonfinite_samples: int
    peak: float
    rms_dbfs: float
    decoder_error: str | None = None  # the decoder's last complaint about damaged data (None: a clean decode)


def scan(path: str | Path, block_s: float = 300.0, timeout_s: float | None = None) -> ScanResult:
    """Decode the whole file once, in blocks, and measure it (bounded memory for 3 h programmes)."""
    n = bad = 0
    peak = 0.0
    energy = 0.0
    diagnostics: dict = {}
    for block in stream(path, block_s=block_s, timeout_s=timeout_s, diagnostics=diagnostics):
        if not block.size:
            continue
        e = float(np.dot(block, block))  # BLAS; a NaN/inf anywhere in the block makes this non-finite
        if not np.isfinite(e):
            finite = np.isfinite(block)
            bad += int(block.size - finite.sum())
            block = np.where(finite, block, 0.0).astype(np.float32)
            e = float(np.dot(block, block))
        n += block.size
        peak = max(peak, float(block.max()), -float(block.min()))
        energy += e
    rms = np.sqrt(energy / n) if n else 0.0
    rms_db = 20 * np.log10(rms) if rms > 0 else float("-inf")
    error = (diagnostics.get("last_error") or "damaged data") if diagnostics.get("stderr_bytes") else None
    return ScanResult(n / SAMPLE_RATE, bad, peak, float(rms_db), error)


def channels_identical(path: str | Path, num_channels: int, duration_s: float) -> bool:
    """Do all channels carry one signal (dual mono: then channel 0 *is* the mean)? 2 s at 10, 50 and 90 %."""
    for at in (0.1, 0.5, 0.9) if num_channels > 1 else ():
        x = _ffmpeg_pcm(local_path(path), max(0.0, at * duration_s - 1.0), 2.0, SAMPLE_RATE, 60.0, num_channels)
        x = x[: x.size - x.size % num_channels].reshape(-1, num_channels)
        if np.ptp(x, axis=1).max(initial=0.0) > 1e-4:  # channels differ by more than 1e-4 of full scale
            return False
    return True


__all__ = ["SAMPLE_RATE", "AudioDecodeError", "DecodeTimeout", "AudioInfo", "is_url", "open_binary", "url_fs"]
__all__ += ["ScanResult", "probe", "load", "stream", "scan", "channels_identical"]
