"""Tests of the studio (`ddsp_studio`, `ddsp.training.studio_lib` and `studio_jobs`): its HTTP API, its page
in a browser, its refusals.

A tiny model is trained for two steps, and a second one for one step on TFRecords that
`ddsp.data_prep.pipeline.prepare` made from an A4 tone (real `dataset_statistics.json`, for auto-adjust); the
studio serves both in this process on a free port. Generated harmonic clips are uploaded, the jobs polled, the
WAVs fetched, and their pitch measured with an autocorrelation in NumPy (independent of the CREPE that drives
the model). The browser tests drive the page in headless Chromium (Debian's chromium and chromedriver; skipped
without them): an upload, and a recording from Chromium's fake microphone (a WAV tone of known pitch).
"""
import concurrent.futures
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

import helpers

SR = 16000
NOTES_HZ = (220.0, 330.0)
TRAIN_HZ = 440.0  # the tone the auto-adjust model's data was prepared from
CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'


@pytest.fixture(scope='module')
def trained_dir(tmp_path_factory):
  return helpers.train_tiny(str(tmp_path_factory.mktemp('studio') / 'violin'),
                            helpers.tiny_params(n_examples=8, batch_size=2))


@pytest.fixture(scope='module')
def prepared_dir(tmp_path_factory):
  """A tiny model trained (1 step) on TFRecords prepared by `ddsp.data_prep.pipeline.prepare` (the demo's
  preparation) from a 3 s harmonic tone at `TRAIN_HZ`: its `dataset_statistics.json` is real, and the studio
  finds it beside the TFRecords through the model's gin config, as for the demo's model."""
  from ddsp.data_prep import pipeline
  root = tmp_path_factory.mktemp('prepared')
  source = str(root / 'a4.wav')
  sf.write(source, _clip(3.0, notes=(TRAIN_HZ,)), SR, subtype='PCM_16')
  prefix = str(root / 'data' / 'train.tfrecord')
  pipeline.prepare(source, prefix, pipeline.PrepareConfig(example_secs=1.0, hop_secs=1.0), num_shards=1)
  params = [p for p in helpers.tiny_params(batch_size=1) if not p.startswith('SyntheticProvider')]
  params += ['TFRecordProvider.example_secs = 1', f"TFRecordProvider.file_pattern = '{prefix}-*'",
             'TFRecordProvider.shuffle_buffer_size = 4']
  from ddsp.training import experiment
  save_dir = str(root / 'a4')
  experiment.run('train', save_dir, gin_files=['models/tiny.gin', 'datasets/tfrecord.gin',
                                               'optimization/base.gin'],
                 gin_params=params, num_steps=1, steps_per_summary=0, progress_bar=False)
  with open(root / 'data' / 'dataset_statistics.json') as f:
    return save_dir, json.load(f)


@pytest.fixture(scope='module')
def server(trained_dir, prepared_dir):
  from ddsp.training import studio_jobs
  from ddsp.training import studio_lib
  studio = studio_jobs.Studio([trained_dir, prepared_dir[0]], crepe_frame_rate=100)
  httpd = studio_lib.StudioServer(studio, '127.0.0.1', 0)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd
  httpd.shutdown()
  httpd.server_close()
  studio.close()


def _clip(seconds_per_note=1.0, notes=NOTES_HZ, rate=SR):
  """A harmonic tone (8 partials, 1/k amplitudes), one note after the other, with 20 ms fades."""
  n = int(seconds_per_note * rate)
  t = np.arange(n) / rate
  fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
  parts = [sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 9)) * fade for f0 in notes]
  audio = 0.25 * np.concatenate(parts) / 2.7
  return audio.astype(np.float32)


def _wav_bytes(audio, rate=SR, subtype='PCM_16'):
  buf = io.BytesIO()
  sf.write(buf, audio, rate, format='WAV', subtype=subtype)
  return buf.getvalue()


def _acf_f0(audio, rate, start_s, stop_s, fmin=60.0, fmax=1000.0, window=2048, hop=512, up=8):
  """Median f0 (Hz) of `audio[start_s:stop_s]` by normalised autocorrelation per window: the first lag within
  10 % of the best peak, with the autocorrelation interpolated to 1/`up` sample (sharp peaks of bright tones
  fall between integer lags) and refined by a parabola."""
  x = np.asarray(audio, np.float64)[int(start_s * rate):int(stop_s * rate)]
  lo, hi = int(up * rate / fmax), int(up * rate / fmin)
  estimates = []
  for begin in range(0, x.size - window, hop):
    frame = x[begin:begin + window] * np.hanning(window)
    frame = frame - frame.mean()
    power = np.abs(np.fft.rfft(frame, 2 * window)) ** 2
    acf = np.fft.irfft(power, 2 * window * up)[:window * up]
    if acf[0] <= 0:
      continue
    region = acf[lo:hi] / acf[0]
    best = float(region.max())
    if best < 0.3:
      continue
    peaks = [i for i in range(1, region.size - 1) if region[i] >= region[i - 1] and region[i] >= region[i + 1]
             and region[i] >= 0.9 * best]
    i = peaks[0]
    a, b, c = region[i - 1], region[i], region[i + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    estimates.append(up * rate / (lo + i + shift))
  assert estimates, 'no periodic window found'
  return float(np.median(estimates))


def _cents(a, b):
  return 1200.0 * np.log2(a / b)


# ------------------------------------------------------------------------------------------------------------
# HTTP.
# ------------------------------------------------------------------------------------------------------------
def _request(server, method, path, body=None, headers=None):
  conn = http.client.HTTPConnection('127.0.0.1', server.server_address[1], timeout=60)
  try:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()
  finally:
    conn.close()


def _json(server, method, path, body=None):
  status, headers, data = _request(server, method, path, body)
  assert headers['Content-Type'] == 'application/json', (status, data[:200])
  assert b'Traceback' not in data
  return status, json.loads(data)


def _submit(server, audio_bytes, filename='clip.wav', model='violin', **controls):
  query = '&'.join(f'{k}={v}' for k, v in dict(model=model, filename=filename, **controls).items())
  return _json(server, 'POST', f'/api/jobs?{query}', audio_bytes)


def _wait(server, url, timeout=90):
  deadline = time.time() + timeout
  seen = set()
  while time.time() < deadline:
    status, job = _json(server, 'GET', url)
    seen.add(job['stage'])
    if job['status'] in ('done', 'error'):
      return status, job, seen
    time.sleep(0.1)
  raise AssertionError(f'job {url} not finished after {timeout} s')


def _fetch_wav(server, job, name='output.wav'):
  status, headers, data = _request(server, 'GET', job['files'][name])
  assert status == 200 and headers['Content-Type'] == 'audio/wav'
  audio, rate = sf.read(io.BytesIO(data), dtype='float32')
  return audio, rate


def test_page_and_models(server):
  status, headers, page = _request(server, 'GET', '/')
  assert status == 200 and headers['Content-Type'].startswith('text/html')
  for name in ('app.js', 'style.css'):
    status, _, body = _request(server, 'GET', f'/static/{name}')
    assert status == 200 and body
    assert b'http://' not in body and b'https://' not in body  # every asset is local
  assert b'http://' not in page and b'https://' not in page
  status, info = _json(server, 'GET', '/api/models')
  assert status == 200
  assert info['models'] == [{'name': 'violin', 'sample_rate': SR, 'frame_rate': 250.0, 'step': 2,
                             'has_reverb': True, 'auto_adjust': False},
                            {'name': 'a4', 'sample_rate': SR, 'frame_rate': 250.0, 'step': 1,
                             'has_reverb': True, 'auto_adjust': True}]
  assert info['controls']['pitch_shift']['low'] == -96 and info['limits']['max_upload_bytes'] == 50 * 2**20
  assert server.server_address[0] == '127.0.0.1'


def test_transfer_follows_the_input_pitch_and_jobs_do_not_mix(server):
  clip = _clip()
  # Two jobs at once: no shift, and a fifth up, dry; each answer must follow its own controls.
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    posts = list(pool.map(lambda c: _submit(server, _wav_bytes(clip), **c),
                          [{'pitch_shift': 0}, {'pitch_shift': 7, 'reverb': 0, 'loudness_shift': -3}]))
    assert [s for s, _ in posts] == [202, 202] and posts[0][1]['id'] != posts[1][1]['id']
    results = list(pool.map(lambda p: _wait(server, p[1]['url']), posts))
  for (status, job, seen), shift in zip(results, (0, 7)):
    assert status == 200 and job['status'] == 'done', job
    assert job['progress'] == 1.0 and 'synthesis' in seen
    assert job['info']['pitch_shift_semitones'] == shift and job['info']['reverb'] == (shift == 0)
    audio, rate = _fetch_wav(server, job)
    assert rate == SR and audio.shape == clip.shape and np.abs(audio).max() > 1e-3
    heard, _ = _fetch_wav(server, job, 'input.wav')
    np.testing.assert_allclose(heard, clip, atol=2.0 / 32767)
    for i, note in enumerate(NOTES_HZ):
      f0_in = _acf_f0(clip, SR, i + 0.25, i + 0.8)
      f0_out = _acf_f0(audio, SR, i + 0.25, i + 0.8)
      assert abs(_cents(f0_in, note)) < 10.0
      assert abs(_cents(f0_out, f0_in) - 100.0 * shift) < 50.0, (job['controls'], note, f0_in, f0_out)
    for name in ('output.png', 'input_spectrogram.png', 'output_spectrogram.png', 'curves.png'):
      status, headers, data = _request(server, 'GET', job['files'][name])
      assert status == 200 and headers['Content-Type'] == 'image/png' and data[:8] == b'\x89PNG\r\n\x1a\n'
    status, headers, data = _request(server, 'GET', job['files']['output.wav'] + '?download=1')
    assert status == 200 and headers['Content-Disposition'].startswith('attachment; filename="clip_violin_')


def test_auto_adjust_moves_the_input_to_the_training_sets_octave(server, prepared_dir):
  _, stats = prepared_dir
  # The statistics were measured on the prepared tone: its median f0 is the tone's (CREPE, within 20 cents).
  median_hz = stats['f0_hz']['quantiles']['0.5']
  assert abs(_cents(median_hz, TRAIN_HZ)) < 20.0 and stats['n_voiced_frames'] > 0.8 * stats['n_frames']
  # The input: G3 then B3 (MIDI 55 and 59), whichever CREPE's median lands on, the whole octave that brings
  # it nearest the training set's A4 (MIDI 69) is one up: the model is fed the input's pitch an octave higher.
  notes = (196.0, 246.94)
  clip = _clip(notes=notes)
  midi_ds = 69.0 + 12.0 * np.log2(median_hz / 440.0)
  for midi_in in 69.0 + 12.0 * np.log2(np.array(notes) / 440.0):
    assert min(range(-4, 5), key=lambda k: abs(midi_in + 12 * k - midi_ds)) == 1
  octaves = 1
  status, job = _submit(server, _wav_bytes(clip), model='a4', auto_adjust=1)
  assert status == 202, job
  status, job, _ = _wait(server, job['url'])
  assert status == 200 and job['status'] == 'done', job
  assert job['info']['auto_octave_shift'] == octaves
  assert np.isfinite(job['info']['auto_loudness_shift_db'])
  audio, _ = _fetch_wav(server, job)
  for i, note in enumerate(notes):
    f0_out = _acf_f0(audio, SR, i + 0.25, i + 0.8)
    assert abs(_cents(f0_out, note * 2.0 ** octaves)) < 50.0, (note, f0_out)


def test_long_job_shows_progress_inside_a_stage_and_the_time_left(server):
  clip = _wav_bytes(_clip(4.0))  # 8 s: CREPE takes long enough for many polls
  for audio in (_wav_bytes(_clip()), clip):  # two lengths: the studio fits each stage's a + b * seconds
    status, job = _submit(server, audio)
    status, first, _ = _wait(server, job['url'])
    assert status == 200 and first['status'] == 'done' and first['progress'] == 1.0 and first['elapsed_s'] > 0
  # The model has finished jobs: the next one's bar moves inside each stage and says how long is left.
  status, job = _submit(server, clip)
  assert status == 202
  polls = []
  while not polls or polls[-1]['status'] not in ('done', 'error'):
    polls.append(_json(server, 'GET', job['url'])[1])
    time.sleep(0.05)
  assert polls[-1]['status'] == 'done'
  progress = [p['progress'] for p in polls]
  assert progress == sorted(progress) and progress[-1] == 1.0
  elapsed = [p['elapsed_s'] for p in polls]
  assert elapsed == sorted(elapsed)
  inside = [p for p in polls if p['stage'] == 'pitch (CREPE) and loudness']
  assert len(inside) >= 3 and all(0.15 < p['progress'] < 0.55 for p in inside[1:]), inside
  left = [p['left_s'] for p in polls if 'left_s' in p]
  assert len(left) >= 3 and left == sorted(left, reverse=True), left
  # The estimate is of the right size: the first guess within a factor of 4 of the time the job took (the
  # machine's load may change between jobs).
  assert polls[-1]['elapsed_s'] / 4 < left[0] < 4 * polls[-1]['elapsed_s'], (left[0], polls[-1]['elapsed_s'])


def test_bad_inputs_are_4xx_json_and_the_server_keeps_serving(server):
  clip = _wav_bytes(_clip())
  cases = [
      (_submit(server, b'this is a text file, not audio\n' * 10, filename='notes.txt'), 415, 'not a recording'),
      (_submit(server, _wav_bytes(_clip(0.05)), filename='short.wav'), 400, 'at least 0.5 s'),
      (_submit(server, _wav_bytes(np.zeros(SR, np.float32)), filename='silence.wav'), 400, 'silent'),
      (_submit(server, b'', filename='empty.wav'), 400, 'empty'),
      (_json(server, 'POST', '/api/jobs?model=cello', clip), 404, "Unknown model 'cello'"),
      (_submit(server, clip, pitch_shift=1000), 400, 'pitch_shift=1000 is outside the accepted range [-96, 96]'),
      (_submit(server, clip, loudness_shift='loud'), 400, "loudness_shift='loud' is not a number"),
      (_submit(server, clip, pitch_shift='nan'), 400, 'not a finite number'),
      (_submit(server, clip, reverb='maybe'), 400, 'not a yes/no value'),
      (_submit(server, clip, auto_adjust=1), 400, 'dataset_statistics.json'),
      (_json(server, 'GET', '/api/jobs/0123abc'), 404, 'No job'),
      (_json(server, 'GET', '/static/../../setup.py'), 404, 'Nothing at'),
      (_json(server, 'GET', '/static/secret.py'), 404, 'No static file'),
  ]
  for (status, body), expected_status, text in cases:
    assert status == expected_status and text in body['error'], (status, body)
  # Over 50 MB: refused with 413 (the body is read and dropped, so the client gets the answer).
  big = b'\0' * (50 * 2**20 + 1)
  status, body = _submit(server, big, filename='huge.wav')
  assert status == 413 and 'up to 50 MB' in body['error']
  # A control the model refuses once the pitch is known (every voiced frame above Nyquist): the job fails
  # with a 4xx answer to its poll, and a message.
  status, job = _submit(server, clip, pitch_shift=96)
  assert status == 202
  status, job, _ = _wait(server, job['url'])
  assert status == 422 and job['status'] == 'error' and 'Nyquist' in job['error']
  status, body = _json(server, 'GET', f"/api/jobs/{job['id']}/files/output.wav")
  assert status == 409
  status, info = _json(server, 'GET', '/api/models')
  assert status == 200 and info['models'][0]['name'] == 'violin'


def test_cli_refuses_bad_flags_in_one_line(tmp_path):
  import socket
  env = helpers.subprocess_env()
  busy = socket.socket()
  busy.bind(('127.0.0.1', 0))
  busy.listen(1)
  port = busy.getsockname()[1]
  for args, code, text in (([f'--model_dir={tmp_path / "missing"}'], 1, 'is not a folder'),
                           (['--model_dir=x', '--port=70000'], 2, '--port=70000 is outside the accepted range'),
                           ([f'--model_dir={tmp_path}', f'--port={port}'], 1,
                            f'port {port} on 127.0.0.1 is in use (another ddsp_studio?): choose another')):
    proc = subprocess.run([sys.executable, '-m', 'ddsp.training.studio'] + args, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == code, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[0].startswith('ddsp_studio: error: ') and text in lines[0], lines
  busy.close()


# ------------------------------------------------------------------------------------------------------------
# The page in a browser.
# ------------------------------------------------------------------------------------------------------------
MIC_HZ = 250.0  # the fake microphone's tone: 192 samples a period at 48 kHz, so its 2 s loop has no seam
MIC_RATE = 48000


@pytest.fixture(scope='module')
def driver(tmp_path_factory):
  """Headless Chromium whose microphone is a harmonic tone at `MIC_HZ` (Chromium's fake capture device,
  looping a WAV written here; the permission prompt is accepted)."""
  if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(f'the browser test needs Debian\'s chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER}): '
                'apt-get install chromium chromium-driver')
  webdriver = pytest.importorskip('selenium.webdriver', reason='the browser test needs selenium (test extra)')
  from selenium.webdriver.chrome.service import Service
  root = tmp_path_factory.mktemp('chromium')
  mic = str(root / 'mic.wav')
  sf.write(mic, _clip(2.0, notes=(MIC_HZ,), rate=MIC_RATE), MIC_RATE, subtype='PCM_16')
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync',
               '--disable-dev-shm-usage', '--window-size=1280,1500', f'--user-data-dir={root / "profile"}',
               '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
               f'--use-file-for-fake-audio-capture={mic}', '--autoplay-policy=no-user-gesture-required'):
    options.add_argument(flag)
  browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  yield browser
  browser.quit()


def test_page_in_headless_chromium(server, driver, tmp_path):
  from ddsp import bundled
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait
  voice, rate = sf.read(bundled.asset_path('voice_like_phrase'), dtype='float32')
  clip = str(tmp_path / 'voice.wav')
  sf.write(clip, voice[:3 * rate], rate)
  driver.get(server.url)
  wait = WebDriverWait(driver, 60)
  wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#model option'))
  assert driver.find_element(By.ID, 'model').get_attribute('value') == 'violin'
  assert not driver.find_element(By.ID, 'results').is_displayed()  # no empty players before a transfer
  # A refused upload shows its message on the page.
  bad = tmp_path / 'notes.txt'
  bad.write_text('not audio\n' * 20)
  driver.find_element(By.ID, 'file').send_keys(str(bad))
  driver.find_element(By.ID, 'transfer').click()
  wait.until(lambda d: d.find_element(By.ID, 'message').is_displayed())
  assert 'not a recording' in driver.find_element(By.ID, 'message').text
  # The real transfer: upload, press transfer, wait for the players and both spectrograms.
  driver.find_element(By.ID, 'file').send_keys(clip)
  driver.find_element(By.ID, 'transfer').click()
  wait.until(lambda d: d.find_element(By.ID, 'output-audio').get_attribute('src'))
  loaded = ("return ['input-spectrogram', 'output-spectrogram', 'curves'].every(id => {"
            "const img = document.getElementById(id); return img.complete && img.naturalWidth > 0; });")
  wait.until(lambda d: d.execute_script(loaded))
  assert not driver.find_element(By.ID, 'message').is_displayed()
  assert '/api/jobs/' in driver.find_element(By.ID, 'input-audio').get_attribute('src')
  duration = "return document.getElementById('output-audio').duration"
  wait.until(lambda d: (d.execute_script(duration) or 0) > 2.9)
  widths = driver.execute_script("return ['input-spectrogram', 'output-spectrogram'].map("
                                 "id => document.getElementById(id).naturalWidth)")
  assert min(widths) > 100
  shot = str(tmp_path / 'studio.png')
  driver.execute_script('window.scrollTo(0, 0)')
  assert driver.save_screenshot(shot)
  from PIL import Image
  pixels = np.asarray(Image.open(shot).convert('RGB'), np.float64)
  assert pixels.shape[0] > 500 and pixels.std() > 20.0  # not blank


def _record_on_page(server, driver, seconds, script=None):
  """Loads the page (then runs `script`), records `seconds` from the fake microphone; returns a 60 s wait."""
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait
  driver.get(server.url)
  wait = WebDriverWait(driver, 60)
  wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#model option'))
  if script:
    driver.execute_script(script)
  record = driver.find_element(By.ID, 'record')
  record.click()
  wait.until(lambda d: d.find_element(By.ID, 'record').text == 'Stop')
  time.sleep(seconds)
  record.click()
  return wait


def test_microphone_recording_in_headless_chromium(server, driver):
  """Record ~2 s from the (fake) microphone on the page, transfer, and check the server got the tone."""
  from selenium.webdriver.common.by import By
  wait = _record_on_page(server, driver, 2.0)
  info = driver.find_element(By.ID, 'source-info')
  # the counter reads 'recording... N s' until the page has made the file
  wait.until(lambda d: info.text.startswith('recording.') and not info.text.startswith('recording...'))
  assert info.text.startswith('recording.wav'), info.text  # the page sends the recording as WAV
  assert not driver.find_element(By.ID, 'message').is_displayed()
  driver.find_element(By.ID, 'transfer').click()
  wait.until(lambda d: d.find_element(By.ID, 'output-audio').get_attribute('src')
             or d.find_element(By.ID, 'message').is_displayed())
  assert not driver.find_element(By.ID, 'message').is_displayed(), driver.find_element(By.ID, 'message').text
  src = driver.find_element(By.ID, 'input-audio').get_attribute('src')
  job_url = '/api/jobs/' + src.split('/api/jobs/')[1].split('/')[0]
  status, job = _json(server, 'GET', job_url)
  assert status == 200 and job['status'] == 'done'
  assert job['info']['notes'] == [], job['info']  # sent as mono WAV at the model's rate: nothing converted
  heard, rate = _fetch_wav(server, job, 'input.wav')
  seconds = heard.size / rate
  assert 1.5 < seconds < 4.0, seconds
  f0_in = _acf_f0(heard, rate, 0.3, seconds - 0.2)
  assert abs(_cents(f0_in, MIC_HZ)) < 50.0, f0_in
  audio, _ = _fetch_wav(server, job)
  f0_out = _acf_f0(audio, rate, 0.3, seconds - 0.2)
  assert abs(_cents(f0_out, f0_in)) < 50.0, (f0_in, f0_out)


def test_a_recording_the_browser_cannot_decode_is_a_message(server, driver):
  """A recording the browser cannot decode (decodeAudioData rejects, as for a codec it lacks) is a message
  naming the recorder's format, no source is set and nothing is sent."""
  from selenium.webdriver.common.by import By
  wait = _record_on_page(server, driver, 1.0, script=(
      "(window.AudioContext || window.webkitAudioContext).prototype.decodeAudioData = "
      "function () { return Promise.reject(new Error('Unable to decode audio data')); };"))
  message = driver.find_element(By.ID, 'message')
  wait.until(lambda d: message.is_displayed())
  assert 'could not be decoded by this browser: Unable to decode audio data' in message.text, message.text
  assert 'Record again, or upload a file' in message.text
  assert driver.find_element(By.ID, 'source-info').text == 'no recording yet'
  assert not driver.find_element(By.ID, 'transfer').is_enabled()


def test_a_port_in_use_is_refused_before_any_model_loads(tmp_path):
  import socket
  from ddsp.training import studio_lib
  with socket.socket() as busy:
    busy.bind(('127.0.0.1', 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    # The model folder does not exist: the port is what is refused, at once.
    with pytest.raises(OSError, match=f'^port {port} on 127.0.0.1 is in use .*--port'):
      studio_lib.serve([str(tmp_path / 'missing')], port=port)
  with pytest.raises(FileNotFoundError):
    studio_lib.serve([str(tmp_path / 'missing')], port=0)
