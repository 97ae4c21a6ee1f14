// The page of `vvbench serve`: speak (streamed PCM into Web Audio, other formats whole in <audio>),
// long-form jobs with a chunk preview, and the live /v1/stats. Same-origin requests only; the API
// key (if any) lives in sessionStorage and goes out as `Authorization: Bearer` on every fetch, so
// audio from the service is fetched and handed to <audio> as a blob (an <audio src> sends no headers).
"use strict";

const FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"];
const JOB_FORMATS = ["wav", "pcm"];  // POST /v1/jobs takes only these (its chunks join gaplessly)
const SAMPLE_RATE = 24000; // pcm is 16-bit little-endian mono at 24 kHz
const KEY_STORE = "vvbench.apiKey";
const STATS_EVERY_MS = 1000;
const JOB_POLL_MS = 400;

// What the page did, for people reading the console and for the browser test.
const state = window.vvbenchPage = {
  speech: null, // {format, t0, firstByteMs, firstBufferMs, bodyEndMs, buffers, samples, contextState}
  job: null, // {id, state, progress, chunks: [{index, durationS}], fullDurationS}
  statsUpdates: 0,
  errors: [],
};

const $ = (id) => document.getElementById(id);

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const key = apiKey();
  if (key) headers.Authorization = "Bearer " + key;
  return headers;
}

class ServiceError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The service's JSON error message ({"error": {"message": ...}}), or the status line if the body is not one.
async function errorOf(resp) {
  let message = `HTTP ${resp.status} ${resp.statusText}`.trim();
  try {
    const body = await resp.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON: keep the status line */ }
  return new ServiceError(resp.status, message);
}

async function call(path, init) {
  const opts = Object.assign({}, init || {});
  opts.headers = authHeaders(opts.headers);
  opts.cache = "no-store";
  const resp = await fetch(path, opts);
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

async function getJSON(path) {
  return (await call(path)).json();
}

function postJSON(path, body) {
  return call(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}

function showError(id, err) {
  const el = $(id);
  if (!err) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  const text = err.status ? `${err.status}: ${err.message}` : String(err.message || err);
  el.textContent = text;
  el.hidden = false;
  state.errors.push({where: id, status: err.status || null, message: err.message || String(err)});
}

// ---- formatting

function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function fmtNum(n) {
  return n === null || n === undefined ? "—" : String(n);
}

function fmtSeconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return "—";
  return s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`;
}

// ---- the request body shared by speech and jobs

function synthesisBody(prefix) {
  const body = {input: $(prefix + "-text").value, voice: $(prefix + "-voice").value || "alloy",
    response_format: $(prefix + "-format").value};
  const seed = $(prefix + "-seed").value.trim();
  if (seed !== "") body.seed = Number(seed);
  return body;
}

// ---- speech: streamed PCM into Web Audio

let audioContext = null;

function context() {
  if (!audioContext) audioContext = new AudioContext({sampleRate: SAMPLE_RATE});
  if (audioContext.state === "suspended") audioContext.resume();
  return audioContext;
}

// Schedules 16-bit little-endian samples as Web Audio buffers, back to back, as they arrive.
class PcmPlayer {
  constructor(ctx, onFirst) {
    this.ctx = ctx;
    this.onFirst = onFirst;
    this.carry = null; // an odd trailing byte from the previous piece
    this.nextTime = 0;
    this.buffers = 0;
    this.samples = 0;
  }

  push(bytes) {
    let data = bytes;
    if (this.carry !== null) {
      data = new Uint8Array(bytes.length + 1);
      data[0] = this.carry;
      data.set(bytes, 1);
      this.carry = null;
    }
    const n = data.length >> 1;
    if (data.length & 1) this.carry = data[data.length - 1];
    if (n === 0) return;
    const view = new DataView(data.buffer, data.byteOffset, n * 2);
    const buffer = this.ctx.createBuffer(1, n, SAMPLE_RATE);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < n; i += 1) channel[i] = view.getInt16(2 * i, true) / 32768;
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.ctx.destination);
    // A small lead keeps the first buffer from starting in the past; later ones follow gaplessly.
    this.nextTime = Math.max(this.nextTime, this.ctx.currentTime + 0.05);
    source.start(this.nextTime);
    this.nextTime += buffer.duration;
    this.buffers += 1;
    this.samples += n;
    if (this.buffers === 1) this.onFirst();
  }
}

async function speakStreamed(body, rec) {
  const ctx = context();
  const resp = await postJSON("/v1/audio/speech", Object.assign(body, {stream: true}));
  rec.firstByteMs = null;
  $("speech-seed-used").textContent = resp.headers.get("X-Seed") || "—";
  const player = new PcmPlayer(ctx, () => {
    rec.firstBufferMs = performance.now() - rec.t0;
    $("speech-ttfa").textContent = `${rec.firstBufferMs.toFixed(0)} ms`;
    $("speech-status").textContent = "playing while the rest arrives";
  });
  const reader = resp.body.getReader();
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    if (rec.firstByteMs === null) rec.firstByteMs = performance.now() - rec.t0;
    player.push(value);
    rec.buffers = player.buffers;
    rec.samples = player.samples;
    $("speech-audio-s").textContent = fmtSeconds(player.samples / SAMPLE_RATE);
  }
  rec.contextState = ctx.state;
  return player.samples / SAMPLE_RATE;
}

// Any other format: the whole body, played by an <audio> element from a blob.
async function speakWhole(body, rec) {
  const resp = await postJSON("/v1/audio/speech", Object.assign(body, {stream: false}));
  $("speech-seed-used").textContent = resp.headers.get("X-Seed") || "—";
  const blob = await resp.blob();
  rec.firstByteMs = performance.now() - rec.t0;
  const player = $("speech-player");
  const duration = await playBlob(player, blob);
  player.hidden = false;
  player.play().catch(() => { /* autoplay refused: the controls are there */ });
  $("speech-ttfa").textContent = `${rec.firstByteMs.toFixed(0)} ms (whole body)`;
  return duration;
}

async function speak(event) {
  event.preventDefault();
  showError("speech-error", null);
  $("speech-player").hidden = true;
  for (const id of ["speech-ttfa", "speech-e2e", "speech-audio-s", "speech-seed-used"]) $(id).textContent = "—";
  const body = synthesisBody("speech");
  const rec = state.speech = {format: body.response_format, t0: performance.now(), firstByteMs: null,
    firstBufferMs: null, bodyEndMs: null, buffers: 0, samples: 0, audioS: null, error: null, done: false};
  $("speech-go").disabled = true;
  $("speech-status").textContent = "requesting";
  try {
    rec.audioS = body.response_format === "pcm" ? await speakStreamed(body, rec) : await speakWhole(body, rec);
    rec.bodyEndMs = performance.now() - rec.t0;
    $("speech-e2e").textContent = `${rec.bodyEndMs.toFixed(0)} ms`;
    $("speech-audio-s").textContent = fmtSeconds(rec.audioS);
    $("speech-status").textContent = "done";
  } catch (err) {
    rec.error = {status: err.status || null, message: err.message};
    $("speech-status").textContent = "failed";
    showError("speech-error", err);
  } finally {
    rec.done = true;
    $("speech-go").disabled = false;
  }
}

// ---- audio elements fed from fetched blobs

// pcm has no header an <audio> element could read: wrap it in a WAV header.
function wavFromPcm(pcm) {
  const header = new DataView(new ArrayBuffer(44));
  const ascii = (offset, s) => { for (let i = 0; i < s.length; i += 1) header.setUint8(offset + i, s.charCodeAt(i)); };
  ascii(0, "RIFF"); header.setUint32(4, 36 + pcm.byteLength, true); ascii(8, "WAVE");
  ascii(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
  header.setUint32(24, SAMPLE_RATE, true); header.setUint32(28, SAMPLE_RATE * 2, true);
  header.setUint16(32, 2, true); header.setUint16(34, 16, true);
  ascii(36, "data"); header.setUint32(40, pcm.byteLength, true);
  return new Blob([header.buffer, pcm], {type: "audio/wav"});
}

async function audioBlob(resp, format) {
  if (format === "pcm") return wavFromPcm(await resp.arrayBuffer());
  return resp.blob();
}

// Points `audio` at the blob; resolves with its duration once the metadata is read.
function playBlob(audio, blob) {
  return new Promise((resolve, reject) => {
    if (audio.dataset.url) URL.revokeObjectURL(audio.dataset.url);
    const url = URL.createObjectURL(blob);
    audio.dataset.url = url;
    audio.onloadedmetadata = () => resolve(audio.duration);
    audio.onerror = () => reject(new Error(`this browser cannot play the audio (${blob.type || "unknown type"})`));
    audio.preload = "metadata";
    audio.src = url;
  });
}

// ---- long-form jobs

let jobTimer = null;

async function startJob(event) {
  event.preventDefault();
  showError("job-error", null);
  if (jobTimer) clearTimeout(jobTimer);
  $("job-chunks").replaceChildren();
  $("job-full").hidden = true;
  setProgress(0);
  const body = synthesisBody("job");
  $("job-go").disabled = true;
  $("job-status").textContent = "submitting";
  try {
    const job = await (await postJSON("/v1/jobs", body)).json();
    state.job = {id: job.id, state: job.state, progress: job.progress, format: job.response_format,
      chunks: [], fullDurationS: null, error: null};
    showJob(job);
    pollJob(job.id);
  } catch (err) {
    $("job-status").textContent = "not started";
    showError("job-error", err);
  } finally {
    $("job-go").disabled = false;
  }
}

function setProgress(share) {
  const pct = Math.round(share * 100);
  $("job-progress-fill").style.width = `${pct}%`;
  $("job-progress").setAttribute("aria-valuenow", String(pct));
  $("job-percent").textContent = `${pct}%`;
}

function showJob(job) {
  setProgress(job.progress);
  const audio = `${fmtSeconds(job.audio_s)} of ${fmtSeconds(job.expected_audio_s)}`;
  $("job-status").textContent = `${job.id} · ${job.state} · chunks ${job.chunks_ready}/${job.chunks_total} · audio ${audio} · seed ${job.seed}`;
}

async function pollJob(id) {
  const rec = state.job;
  if (!rec || rec.id !== id) return;
  let job;
  try {
    job = await getJSON(`/v1/jobs/${id}`);
  } catch (err) {
    showError("job-error", err);
    jobTimer = setTimeout(() => pollJob(id), JOB_POLL_MS * 5);
    return;
  }
  if (state.job !== rec) return; // a newer job replaced this one meanwhile
  rec.state = job.state;
  rec.progress = job.progress;
  showJob(job);
  try {
    for (let i = rec.chunks.length; i < job.chunks_ready; i += 1) await addChunk(rec, i);
    if (job.state === "done" && rec.fullDurationS === null) await addFull(rec);
  } catch (err) {
    showError("job-error", err);
  }
  if (job.state === "failed") showError("job-error", new Error(`job failed: ${job.error || "no reason given"}`));
  if (!["done", "failed", "cancelled"].includes(job.state)) jobTimer = setTimeout(() => pollJob(id), JOB_POLL_MS);
}

async function addChunk(rec, index) {
  const item = document.createElement("li");
  const label = document.createElement("span");
  label.className = "chunk-label";
  label.textContent = `chunk ${index + 1}`;
  const audio = document.createElement("audio");
  audio.controls = true;
  audio.id = `job-chunk-${index}`;
  item.append(label, audio);
  $("job-chunks").append(item);
  try {
    const resp = await call(`/v1/jobs/${rec.id}/chunks/${index}`);
    const durationS = await playBlob(audio, await audioBlob(resp, rec.format));
    // loadedAtProgress below 1: the chunk was playable while the rest still rendered
    rec.chunks.push({index, durationS, loadedAtProgress: rec.progress});
    label.textContent = `chunk ${index + 1} · ${fmtSeconds(durationS)}`;
  } catch (err) {
    item.remove(); // listed again at the next poll
    throw err;
  }
}

async function addFull(rec) {
  const resp = await call(`/v1/jobs/${rec.id}/audio`);
  rec.fullDurationS = await playBlob($("job-audio"), await audioBlob(resp, rec.format));
  $("job-full").hidden = false;
}

// ---- live state

async function pollStats() {
  try {
    const s = await getJSON("/v1/stats");
    const svc = s.service || {};
    const jobs = svc.jobs || {};
    $("stat-queue").textContent = fmtNum(s.queue_depth);
    $("stat-active").textContent = s.max_batch ? `${fmtNum(s.active_streams)} / ${s.max_batch}` : fmtNum(s.active_streams);
    $("stat-prefilling").textContent = fmtNum(s.prefilling_streams);
    $("stat-http").textContent = fmtNum(svc.active_http_streams);
    $("stat-jobs").textContent = `${fmtNum(jobs.queued)} / ${fmtNum(jobs.running)}`;
    $("stat-weights").textContent = fmtBytes(s.weights_bytes);
    $("stat-kv").textContent = fmtBytes(s.kv_cache_bytes);
    $("stat-budget").textContent = `${fmtBytes(s.stream_reserved_bytes)} / ${fmtBytes(s.memory_budget_bytes)}`;
    $("stat-device").textContent = s.cuda_allocated_bytes === null || s.cuda_allocated_bytes === undefined
      ? "none (CPU)" : `${fmtBytes(s.cuda_allocated_bytes)} allocated, ${fmtBytes(s.cuda_reserved_bytes)} reserved`;
    $("stat-audio").textContent = fmtSeconds(s.audio_s);
    $("stats-meta").textContent = `${s.preset || "?"} on ${s.device || "?"} · up ${fmtSeconds(s.uptime_s)}`;
    $("stats-age").textContent = `updated ${new Date().toLocaleTimeString()}`;
    state.statsUpdates += 1;
    showError("stats-error", null);
  } catch (err) {
    showError("stats-error", err);
  }
  setTimeout(pollStats, STATS_EVERY_MS);
}

// ---- set-up

async function loadVoices() {
  try {
    const voices = (await getJSON("/v1/voices")).data.map((v) => v.id);
    for (const select of document.querySelectorAll("select.voices")) {
      const current = select.value;
      select.replaceChildren(...voices.map((id) => new Option(id, id)));
      select.value = voices.includes(current) ? current : voices[0];
    }
    showError("page-error", null);
  } catch (err) {
    showError("page-error", err);
  }
}

function fillFormats() {
  $("speech-format").replaceChildren(...FORMATS.map((f) => new Option(f, f)));
  $("job-format").replaceChildren(...JOB_FORMATS.map((f) => new Option(f, f)));
  $("speech-format").value = "pcm";
  $("job-format").value = "wav";
}

function useKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
  loadVoices();
}

document.addEventListener("DOMContentLoaded", () => {
  fillFormats();
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", useKey);
  $("speech-form").addEventListener("submit", speak);
  $("job-form").addEventListener("submit", startJob);
  loadVoices();
  pollStats();
});
