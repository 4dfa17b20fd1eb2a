"""Video files in and out: H.264 MP4 from uint8 RGB frames, and back, on local paths or S3 URLs.

Library choice: PyAV (FFmpeg bindings), not OpenCV. Corpus clips must be standard H.264 in
yuv420p so any player, browser or decoder (face-alignment, dlib, diffusion tooling) reads them,
and the frame rate and timestamps must be exact (25 fps clips are cut into per-frame parameters,
so a drifting time base misaligns motion and text). PyAV names the codec (libx264), the pixel
format (yuv420p), the quality (CRF) and the time base explicitly, and its wheels bundle FFmpeg
with libx264. OpenCV's VideoWriter picks codecs by fourcc: 'mp4v' is MPEG-4 Part 2, not H.264,
and whether 'avc1' works depends on how that OpenCV build was compiled; it also offers no CRF
and no time-base control. OpenCV stays in use for image drawing, not for video files.

S3 URLs are encoded to / decoded from a local temporary file (FFmpeg's MP4 muxer must seek back
to write the index, which an object-store stream cannot do).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from tdmm_ray.storage import filesystem, is_s3


class VideoError(ValueError):
    """A video that cannot be written or read; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int
    fps: float
    width: int
    height: int
    codec: str
    pix_fmt: str
    duration_s: float


def _rate(fps: float) -> Fraction:
    if not np.isfinite(fps) or fps <= 0:
        raise VideoError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001


def check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"frames must be [T,H,W,3] RGB, got shape {frames.shape}")
    if frames.shape[0] == 0:
        raise VideoError("no frames to encode")
    if frames.dtype != np.uint8:
        raise VideoError(f"frames must be uint8, got {frames.dtype}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise VideoError(f"H.264 yuv420p needs even width and height, got {w}x{h}")
    return frames


def _encode_local(frames: np.ndarray, path: str, fps: float, crf: int, preset: str) -> None:
    import av

    rate = _rate(fps)
    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i  # the encoder's time base is 1/rate: timestamps are exact frame indices
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush delayed frames


def write_video(frames: np.ndarray, target: str, fps: float, crf: int = 18, preset: str = "medium") -> str:
    """Encode uint8 RGB frames [T,H,W,3] to an H.264/yuv420p MP4 at `target` (path or s3:// URL).
    crf 18 is visually lossless for renders; returns `target`."""
    frames = check_frames(frames)
    if not 0 <= crf <= 51:
        raise VideoError(f"crf must be in [0,51], got {crf}")
    if not is_s3(target):
        folder = os.path.dirname(os.path.abspath(target))
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(target)}.partial.mp4")
        try:
            _encode_local(frames, tmp, fps, crf, preset)
            os.replace(tmp, target)  # readers never see a half-written file
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return target
    with tempfile.TemporaryDirectory(prefix="tdmm-video-") as tmpdir:
        local = os.path.join(tmpdir, "clip.mp4")
        _encode_local(frames, local, fps, crf, preset)
        filesystem(target).put_file(local, target[len("s3://"):])
    return target


class _LocalCopy:
    """Context manager: a local path for a path or URL, with clear errors for missing/empty files."""

    def __init__(self, source: str):
        self.source = str(source)
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> str:
        if is_s3(self.source):
            fs = filesystem(self.source)
            key = self.source[len("s3://"):]
            if not fs.exists(key):
                raise VideoError(f"video {self.source} does not exist")
            self._tmpdir = tempfile.TemporaryDirectory(prefix="tdmm-video-")
            path = os.path.join(self._tmpdir.name, "clip.mp4")
            fs.get_file(key, path)
        else:
            path = self.source
            if not os.path.exists(path):
                raise VideoError(f"video {self.source} does not exist")
            if os.path.isdir(path):
                raise VideoError(f"video {self.source} is a folder, not a file")
        if os.path.getsize(path) == 0:
            raise VideoError(f"video {self.source} is empty (0 bytes)")
        return path

    def __exit__(self, *exc) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()


def _open(path: str, source: str):
    import av

    try:
        container = av.open(path, mode="r")
    except av.FFmpegError as err:
        raise VideoError(f"video {source} cannot be opened (corrupt or not a video): {err}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"video {source} has no video stream")
    return container


def probe(source: str) -> VideoInfo:
    """Frame count, fps, size and codec of a video, from its header (no full decode when the
    container records the frame count, as MP4 does)."""
    with _LocalCopy(source) as path:
        container = _open(path, source)
        with container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            n = stream.frames
            if not n:
                n = sum(1 for _ in _decode_frames(container, source))
            duration = n / fps if fps else 0.0  # the muxer's own time scale rounds stream.duration
            return VideoInfo(n, fps, stream.codec_context.width, stream.codec_context.height,
                             stream.codec_context.name, str(stream.codec_context.pix_fmt), duration)


def _decode_frames(container, source: str):
    import av

    try:
        yield from container.decode(video=0)
    except av.FFmpegError as err:
        raise VideoError(f"video {source} is corrupt: decoding failed ({err})") from None


def read_video(source: str, max_frames: int | None = None) -> tuple[np.ndarray, float, int]:
    """Decode a video (path or s3:// URL) -> (frames [T,H,W,3] uint8 RGB, fps, n_frames);
    `max_frames` stops after that many (long real footage need not be held in memory)."""
    if max_frames is not None and max_frames < 1:
        raise VideoError(f"max_frames must be >= 1, got {max_frames}")
    with _LocalCopy(source) as path:
        container = _open(path, source)
        with container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = []
            for frame in _decode_frames(container, source):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    if not frames:
        raise VideoError(f"video {source} holds no decodable frames")
    return np.stack(frames), fps, len(frames)
