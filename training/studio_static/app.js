// The studio page: models from GET /api/models, a transfer as POST /api/jobs (the recording's bytes as the
// body, the controls in the query), then GET /api/jobs/<id> polled until the job is done or failed.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {models: [], limits: {}, source: null, recorder: null, chunks: [], polling: null};

function showMessage(text) {
  const box = $('message');
  box.textContent = text;
  box.hidden = !text;
}

function setBusy(busy) {
  $('transfer').disabled = busy || !state.source || !state.models.length;
  $('progress').hidden = !busy;
  if (!busy) $('stage').textContent = '';
}

async function readJson(response) {
  try {
    return await response.json();
  } catch (e) {
    return {error: `The server answered ${response.status} ${response.statusText}.`};
  }
}

function currentModel() {
  return state.models.find((m) => m.name === $('model').value);
}

function updateModelInfo() {
  const m = currentModel();
  if (!m) return;
  const step = m.step === null ? '' : `, step ${m.step}`;
  $('model-info').textContent = `${m.sample_rate} Hz, ${m.frame_rate} frames/s${step}`;
  $('auto_adjust').disabled = !m.auto_adjust;
  if (!m.auto_adjust) $('auto_adjust').checked = false;
  $('auto_adjust').title = m.auto_adjust ? '' : 'this model has no dataset_statistics.json';
  $('reverb').disabled = !m.has_reverb;
  $('reverb').title = m.has_reverb ? '' : 'this model has no reverb';
}

function clampSlider(id, range) {
  const input = $(id);
  if (range.low !== null && Number(input.min) < range.low) input.min = range.low;
  if (range.high !== null && Number(input.max) > range.high) input.max = range.high;
}

function updateOutputs() {
  $('pitch_shift_value').textContent = `${Number($('pitch_shift').value)} semitones`;
  $('loudness_shift_value').textContent = `${Number($('loudness_shift').value)} dB`;
}

async function loadModels() {
  const response = await fetch('/api/models');
  const data = await readJson(response);
  if (!response.ok) {
    showMessage(data.error || 'The models could not be listed.');
    return;
  }
  state.models = data.models;
  state.limits = data.limits;
  const select = $('model');
  select.textContent = '';
  for (const m of data.models) {
    const option = document.createElement('option');
    option.value = m.name;
    option.textContent = m.name;
    select.appendChild(option);
  }
  for (const [name, range] of Object.entries(data.controls || {})) clampSlider(name, range);
  updateModelInfo();
  setBusy(false);
}

function setSource(blob, name) {
  state.source = {blob, name};
  const mb = (blob.size / 1048576).toFixed(2);
  $('source-info').textContent = `${name} (${mb} MB)`;
  setBusy(false);
}

// A recording (any format the browser decodes) as a 16-bit mono WAV, which the server always reads.
function encodeWav(audioBuffer) {
  const n = audioBuffer.length;
  const rate = audioBuffer.sampleRate;
  const mono = new Float32Array(n);
  for (let c = 0; c < audioBuffer.numberOfChannels; c++) {
    const data = audioBuffer.getChannelData(c);
    for (let i = 0; i < n; i++) mono[i] += data[i] / audioBuffer.numberOfChannels;
  }
  const buffer = new ArrayBuffer(44 + 2 * n);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, 'RIFF'); view.setUint32(4, 36 + 2 * n, true); text(8, 'WAVE');
  text(12, 'fmt '); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, 'data'); view.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++) {
    const x = Math.max(-1, Math.min(1, mono[i]));
    view.setInt16(44 + 2 * i, x < 0 ? x * 32768 : x * 32767, true);
  }
  return new Blob([buffer], {type: 'audio/wav'});
}

// Decoded at the model's rate (the browser resamples; a 10 min recording stays well under the upload limit).
function newAudioContext() {
  const Context = window.AudioContext || window.webkitAudioContext;
  const model = currentModel();
  try {
    if (model) return new Context({sampleRate: model.sample_rate});
  } catch (e) {
    // a rate this browser does not offer: its own rate (the server resamples)
  }
  return new Context();
}

async function recordingToWav(blob) {
  const context = newAudioContext();
  try {
    return encodeWav(await context.decodeAudioData(await blob.arrayBuffer()));
  } finally {
    context.close();
  }
}

async function toggleRecording() {
  const button = $('record');
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showMessage('This browser cannot record here (the microphone needs a page served from localhost).');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({audio: true});
  } catch (e) {
    showMessage(`No microphone: ${e.message}`);
    return;
  }
  showMessage('');
  state.chunks = [];
  const recorder = new MediaRecorder(stream);
  const started = Date.now();
  const maxSeconds = state.limits.max_seconds || 600;
  // The time recorded so far; the recording stops by itself at the studio's longest input.
  const clock = setInterval(() => {
    const seconds = (Date.now() - started) / 1000;
    $('source-info').textContent = `recording... ${Math.floor(seconds)} s`;
    if (seconds >= maxSeconds - 1 && recorder.state === 'recording') recorder.stop();
  }, 250);
  recorder.ondataavailable = (event) => { if (event.data.size) state.chunks.push(event.data); };
  recorder.onstop = async () => {
    clearInterval(clock);
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    button.textContent = 'Record';
    button.classList.remove('recording');
    // MediaRecorder writes WebM/Ogg with Opus, which the server does not read: the page sends a WAV.
    const blob = new Blob(state.chunks, {type: recorder.mimeType});
    try {
      setSource(await recordingToWav(blob), 'recording.wav');
    } catch (e) {
      $('source-info').textContent = 'no recording yet';
      showMessage(`The recording (${recorder.mimeType || 'unknown format'}) could not be decoded by this ` +
                  `browser: ${e.message}. Record again, or upload a file.`);
    }
  };
  state.recorder = recorder;
  recorder.start();
  button.textContent = 'Stop';
  button.classList.add('recording');
  $('source-info').textContent = 'recording... 0 s';
}

function showResult(job) {
  const bust = `?job=${job.id}`;
  $('input-audio').src = job.files['input.wav'] + bust;
  $('output-audio').src = job.files['output.wav'] + bust;
  $('input-spectrogram').src = job.files['input_spectrogram.png'] + bust;
  $('output-spectrogram').src = job.files['output_spectrogram.png'] + bust;
  $('curves').src = job.files['curves.png'] + bust;
  $('download').href = job.files['output.wav'] + '?download=1';
  const info = job.info;
  const signed = (x, digits) => `${x > 0 ? '+' : ''}${x.toFixed(digits)}`;
  let summary = `${info.seconds} s at ${info.sample_rate} Hz; pitch shifted ` +
      `${signed(info.pitch_shift_semitones, 1)} semitones, loudness ${signed(info.loudness_shift_db, 1)} dB`;
  if (info.auto_octave_shift !== undefined) {
    const octaves = Math.abs(info.auto_octave_shift) === 1 ? 'octave' : 'octaves';
    summary += ` (auto-adjust: ${signed(info.auto_octave_shift, 0)} ${octaves}, ` +
        `${signed(info.auto_loudness_shift_db, 1)} dB, to the training set's median pitch and mean level)`;
  }
  summary += `; ${info.voiced_frames} of ${info.n_frames} frames voiced; reverb ${info.reverb ? 'on' : 'off'}.`;
  if (info.notes.length) summary += ` Input: ${info.notes.join('; ')}.`;
  $('summary').textContent = summary;
  $('results').hidden = false;
}

async function poll(url) {
  const response = await fetch(url);
  const job = await readJson(response);
  if (!response.ok || job.status === 'error') {
    setBusy(false);
    showMessage(job.error || 'The transfer failed.');
    return;
  }
  $('progress').value = job.progress;
  // The stage, the time since the upload, and (once this model has finished a job) about how long is left.
  const left = job.left_s === undefined ? '' : `, about ${Math.ceil(job.left_s)} s left`;
  $('stage').textContent = `${job.stage} (${Math.round(job.elapsed_s)} s${left})`;
  if (job.status === 'done') {
    setBusy(false);
    showResult(job);
    return;
  }
  state.polling = setTimeout(() => poll(url), 400);
}

async function transfer() {
  if (!state.source) return;
  showMessage('');
  const limit = state.limits.max_upload_bytes;
  if (limit && state.source.blob.size > limit) {
    showMessage(`${state.source.name} is ${(state.source.blob.size / 1048576).toFixed(1)} MB: the studio takes ` +
                `files up to ${Math.floor(limit / 1048576)} MB.`);
    return;
  }
  const query = new URLSearchParams({
    model: $('model').value, pitch_shift: $('pitch_shift').value, loudness_shift: $('loudness_shift').value,
    auto_adjust: $('auto_adjust').checked ? '1' : '0', reverb: $('reverb').checked ? '1' : '0',
    filename: state.source.name,
  });
  setBusy(true);
  $('progress').value = 0;
  $('stage').textContent = 'uploading';
  let response;
  try {
    response = await fetch(`/api/jobs?${query}`, {method: 'POST', body: state.source.blob,
                                                  headers: {'Content-Type': 'application/octet-stream'}});
  } catch (e) {
    setBusy(false);
    showMessage(`The upload failed: ${e.message}`);
    return;
  }
  const data = await readJson(response);
  if (!response.ok) {
    setBusy(false);
    showMessage(data.error || 'The transfer was refused.');
    return;
  }
  poll(data.url);
}

window.addEventListener('DOMContentLoaded', () => {
  $('model').addEventListener('change', updateModelInfo);
  $('file').addEventListener('change', (event) => {
    const file = event.target.files[0];
    if (file) setSource(file, file.name);
  });
  $('record').addEventListener('click', toggleRecording);
  $('transfer').addEventListener('click', transfer);
  $('pitch_shift').addEventListener('input', updateOutputs);
  $('loudness_shift').addEventListener('input', updateOutputs);
  updateOutputs();
  loadModels().catch((e) => showMessage(`The studio server does not answer: ${e.message}`));
});
