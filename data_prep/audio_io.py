"""Robust audio reading for dataset preparation: any file -> mono float32 at the target rate.

`read_audio(path, sample_rate=16000)` decodes WAV, FLAC, OGG/Vorbis, MP3, AIFF and the other formats of the
libsndfile bundled with `soundfile` (1.2.x decodes MP3 itself), at any sample rate and channel count,
downmixes to mono (mean of the channels) and resamples with soxr's high-quality ("HQ") resampler.

Decoding and resampling run block by block, so peak memory is the mono output plus one block, never the
whole file at its original rate and channel count (a 1-hour stereo 44.1 kHz file would be 1.3 GB as float32;
its mono 16 kHz result is 230 MB).

Every problem becomes an `AudioReadError` whose message names the file and the reason: missing path,
directory, unreadable path, empty (0 bytes), not audio / unknown format, corrupt stream, no samples,
non-finite (NaN/Inf) samples. Recoverable oddities (a truncated stream that still decodes, clipping
beyond +-1) are returned as warnings alongside the audio.

Paths with a URL scheme (`gs://`, `s3://`, `hdfs://`, ...) are read through `tf.io.gfile`, so the same
code runs on distributed Beam workers.
"""
import dataclasses
import io
import os
import re

import numpy as np
import soundfile as sf
import soxr

# Extensions that `list_audio_files`-style globbing treats as audio. Reading does not depend on the
# extension: libsndfile sniffs the content.
AUDIO_EXTENSIONS = ('.wav', '.wave', '.flac', '.ogg', '.oga', '.opus', '.mp3', '.aif', '.aiff', '.aifc',
                    '.au', '.caf', '.w64', '.rf64')

_BLOCK_FRAMES = 1 << 18  # 262144 frames per decoded block (~6 s at 44.1 kHz).


class AudioReadError(Exception):
  """A file that cannot be used as audio. `path` and `reason` are kept for reports."""

  def __init__(self, path, reason):
    self.path = path
    self.reason = reason
    super().__init__(f'{path}: {reason}')


@dataclasses.dataclass
class AudioInfo:
  """What was read. `duration_secs` is the duration of the returned (resampled) audio."""
  path: str
  original_sample_rate: int
  original_channels: int
  original_frames: int
  format: str
  subtype: str
  duration_secs: float
  warnings: list


class _Growable:
  """A float32 buffer filled block by block: preallocated from the header's length, so the decoded
  signal is never held twice (a list of blocks plus their concatenation); grows if the header was low."""

  def __init__(self, capacity):
    self._buf = np.empty((max(int(capacity), 1),), np.float32)
    self._n = 0

  def append(self, x):
    if self._n + x.shape[0] > self._buf.shape[0]:
      grown = np.empty((max(2 * self._buf.shape[0], self._n + x.shape[0]),), np.float32)
      grown[:self._n] = self._buf[:self._n]
      self._buf = grown
    self._buf[self._n:self._n + x.shape[0]] = x
    self._n += x.shape[0]

  def array(self):
    if self._n == self._buf.shape[0]:
      return self._buf
    # Shrinks in place when possible (no second copy of the signal).
    try:
      self._buf.resize((self._n,), refcheck=True)
      return self._buf
    except ValueError:
      return self._buf[:self._n].copy()


def _has_scheme(path):
  return '://' in str(path)


def _open_bytes(path):
  """Returns a binary file object for `path`, raising AudioReadError with the reason when impossible."""
  path = os.fspath(path)
  if _has_scheme(path):
    import tensorflow as tf
    try:
      if not tf.io.gfile.exists(path):
        raise AudioReadError(path, 'file not found')
      if tf.io.gfile.isdir(path):
        raise AudioReadError(path, 'is a directory, not an audio file')
      with tf.io.gfile.GFile(path, 'rb') as f:
        data = f.read()
    except AudioReadError:
      raise
    except Exception as e:
      raise AudioReadError(path, f'unreadable path ({type(e).__name__}: {e})') from e
    if not data:
      raise AudioReadError(path, 'empty file (0 bytes)')
    return io.BytesIO(data)
  if os.path.islink(path) and not os.path.exists(path):
    raise AudioReadError(path, 'broken symbolic link (target does not exist)')
  if not os.path.exists(path):
    raise AudioReadError(path, 'file not found')
  if os.path.isdir(path):
    raise AudioReadError(path, 'is a directory, not an audio file')
  try:
    size = os.path.getsize(path)
    f = open(path, 'rb')
  except OSError as e:
    raise AudioReadError(path, f'unreadable path ({type(e).__name__}: {e.strerror or e})') from e
  if size == 0:
    f.close()
    raise AudioReadError(path, 'empty file (0 bytes)')
  return f


def _libsndfile_reason(e):
  msg = re.sub(r'Error opening <[^>]*>: ', '', str(e)).strip()
  if 'Format not recognised' in msg or 'unknown format' in msg.lower():
    return 'not an audio file or unsupported format (libsndfile: format not recognised)'
  return f'corrupt or undecodable audio (libsndfile: {msg})'


def _wav_truncation(fobj):
  """For RIFF/WAVE files, a message if the `data` chunk is shorter than its header says, else None.

  libsndfile silently shortens such files to the bytes present; a truncated copy is worth reporting.
  Leaves the file position at 0.
  """
  try:
    fobj.seek(0, io.SEEK_END)
    size = fobj.tell()
    fobj.seek(0)
    head = fobj.read(12)
    if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
      return None
    pos = 12
    while pos + 8 <= size:
      fobj.seek(pos)
      chunk = fobj.read(8)
      chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], 'little')
      if chunk_id == b'data':
        present = size - pos - 8
        if chunk_size != 0xFFFFFFFF and present < chunk_size:
          return (f'truncated: the WAV header declares {chunk_size} bytes of audio data, the file holds '
                  f'{present}; kept the part present')
        return None
      pos += 8 + chunk_size + (chunk_size & 1)
    return None
  finally:
    fobj.seek(0)


def read_audio(path, sample_rate=16000, block_frames=_BLOCK_FRAMES, quality='HQ'):
  """Reads an audio file as mono float32 at `sample_rate`.

  Args:
    path: local path or a `tf.io.gfile` URL of an audio file in any libsndfile format (wav, flac, ogg,
      mp3, aiff, ...), any sample rate, any number of channels.
    sample_rate: output sample rate in Hz.
    block_frames: frames decoded per block (bounds peak memory).
    quality: soxr quality recipe ('HQ' by default; 'VHQ' for very high quality).

  Returns:
    (audio, info): `audio` is a float32 NumPy array of shape [n_samples] (mono, `sample_rate` Hz;
    n_samples = round(original_frames * sample_rate / original_rate)); `info` is an `AudioInfo` with the
    original format and any warnings.

  Raises:
    AudioReadError: with the reason, for any file that cannot be used.
  """
  path = os.fspath(path)
  if sample_rate <= 0:
    raise ValueError(f'sample_rate must be positive, got {sample_rate}.')
  fobj = _open_bytes(path)
  warnings = []
  try:
    wav_shortfall = _wav_truncation(fobj)
    try:
      snd = sf.SoundFile(fobj)
    except sf.LibsndfileError as e:
      raise AudioReadError(path, _libsndfile_reason(e)) from e
    except (RuntimeError, TypeError, ValueError) as e:
      raise AudioReadError(path, f'corrupt or undecodable audio ({type(e).__name__}: {e})') from e
    with snd:
      in_rate, channels, declared = int(snd.samplerate), int(snd.channels), int(snd.frames)
      fmt, subtype = snd.format, snd.subtype
      if in_rate <= 0 or channels <= 0:
        raise AudioReadError(path, f'invalid header (sample rate {in_rate}, {channels} channels)')
      resampler = None
      if in_rate != sample_rate:
        resampler = soxr.ResampleStream(in_rate, sample_rate, 1, dtype='float32', quality=quality)
      out = _Growable(int(declared * sample_rate / in_rate) + 4096 if declared > 0 else 1 << 20)
      n_read = 0
      n_nonfinite = 0
      peak = 0.0
      while True:
        try:
          block = snd.read(block_frames, dtype='float32', always_2d=True)
        except sf.LibsndfileError as e:
          if n_read == 0:
            raise AudioReadError(path, _libsndfile_reason(e)) from e
          warnings.append(f'decoding stopped after {n_read} frames ({e}); kept the decoded part')
          break
        except (RuntimeError, ValueError) as e:
          raise AudioReadError(path, f'corrupt or undecodable audio ({type(e).__name__}: {e})') from e
        if block.shape[0] == 0:
          break
        n_read += block.shape[0]
        mono = block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0].copy()
        finite = np.isfinite(mono)
        if not finite.all():
          n_nonfinite += int(mono.size - np.count_nonzero(finite))
          mono = np.where(finite, mono, 0.0).astype(np.float32)
        if mono.size:
          peak = max(peak, float(np.max(np.abs(mono))))
        if resampler is not None:
          mono = resampler.resample_chunk(mono, last=False)
        out.append(mono)
      if resampler is not None:
        out.append(resampler.resample_chunk(np.zeros((0,), np.float32), last=True))
  finally:
    fobj.close()
  if n_read == 0:
    raise AudioReadError(path, 'no audio samples (0 frames)')
  if n_nonfinite:
    raise AudioReadError(path, f'contains {n_nonfinite} non-finite (NaN or Inf) samples out of {n_read}')
  if declared > 0 and n_read < declared:
    warnings.append(f'truncated: decoded {n_read} of {declared} frames declared in the header')
  elif wav_shortfall:
    warnings.append(wav_shortfall)
  if peak > 1.0:
    warnings.append(f'samples beyond full scale (peak {peak:.3f}); kept unchanged')
  audio = out.array()
  # soxr's streaming output length equals round(n * ratio) up to one sample; make it exact.
  expected = int(round(n_read * sample_rate / in_rate))
  if audio.shape[0] > expected:
    audio = audio[:expected]
  elif audio.shape[0] < expected:
    audio = np.pad(audio, (0, expected - audio.shape[0]))
  info = AudioInfo(path=path, original_sample_rate=in_rate, original_channels=channels,
                   original_frames=n_read, format=fmt, subtype=subtype,
                   duration_secs=audio.shape[0] / float(sample_rate), warnings=warnings)
  return np.ascontiguousarray(audio, dtype=np.float32), info


def expand_filepatterns(filepatterns):
  """Expands glob patterns (local or `tf.io.gfile` URLs) into a sorted, de-duplicated list of paths.

  Args:
    filepatterns: a string or a list of glob patterns.

  Returns:
    (paths, unmatched): the sorted matches, and the patterns that matched nothing.
  """
  if isinstance(filepatterns, (str, os.PathLike)):
    filepatterns = [filepatterns]
  import tensorflow as tf
  paths, unmatched = set(), []
  for pattern in filepatterns:
    pattern = os.fspath(pattern)
    try:
      matches = tf.io.gfile.glob(pattern)
    except tf.errors.OpError:
      matches = []
    # A literal path that exists but glob skipped (e.g. a broken link) is still reported per file.
    if not matches and not any(c in pattern for c in '*?[') and os.path.lexists(pattern):
      matches = [pattern]
    if not matches:
      unmatched.append(pattern)
    paths.update(matches)
  return sorted(paths), unmatched
