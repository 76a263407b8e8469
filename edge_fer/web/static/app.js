// edge-fer in the browser: camera -> BlazeFace (MediaPipe ImageEmbedder, decoded here) -> crop (aligned to the
// model's template where it has one) -> MediaPipe ImageClassifier (edge-fer's phone TFLite) ->
// per-face tracks and smoothing -> drawing. Everything runs on the device; nothing is fetched
// from anywhere but this page's own folder.
//
// URL parameters: ?delegate=gpu (MediaPipe's WebGL2 GPU delegate; default CPU = WASM/XNNPACK),
// ?detect_every=N, ?smooth=S (override the exported pipeline settings), and the test mode
// ?frames=LIST.json ({"frames": ["a.png", ...]}, relative to the list): those images instead of
// the camera, one after another, every result kept in window.edgeFerResults (no service worker).
import {ImageClassifier, ImageEmbedder} from './vendor/mediapipe-tasks-vision/vision_bundle.mjs';
import {IouTracker, decodeBlazeFace, dropNested, faceCrop, letterbox, percentile, ssdAnchors} from './fer.js';
import {FacesPanel, colorOf} from './faces.js';

const $ = id => document.getElementById(id);
const params = new URL(location.href).searchParams;
window.edgeFerResults = [];
window.edgeFerDone = false;

// What the user sees: a loading panel (progress through the load stages), then the camera prompt
// (what the page does, before the browser asks), then the video and the faces panel; or one
// clear error. window.edgeFerState says which (loading, prompt, asking, running, blocked, error).
const LOAD_STAGES = 4;  // settings, runtime + detector, classifier, camera
function setState(state) {
  window.edgeFerState = state;
  document.body.dataset.state = state;
}
setState('loading');

function progress(stage, text) {
  $('edge-fer-progress').value = stage;
  $('edge-fer-loading-text').textContent = text;
}

function fail(message, state = 'error') {
  $('edge-fer-loading').hidden = true;
  $('edge-fer-prompt').hidden = true;
  $('edge-fer-error').hidden = false;
  $('edge-fer-error').textContent = state === 'error' ? `error: ${message}` : message;
  $('edge-fer-status').textContent = `error: ${message}`;
  setState(state);
  window.edgeFerError = String(message);
  window.edgeFerDone = true;
  throw new Error(message);
}

const BLOCKED = "camera blocked: allow it in the browser's site settings, then reload this page";

function cameraError(e) {
  if (e && (e.name === 'NotAllowedError' || e.name === 'SecurityError')) fail(BLOCKED, 'blocked');
  if (e && (e.name === 'NotFoundError' || e.name === 'OverconstrainedError')) fail('no camera found on this device');
  if (e && e.name === 'NotReadableError') fail('the camera is in use by another app: close it and reload this page');
  fail(`camera: ${e && e.name}: ${e && e.message}`);
}

/** 'granted', 'denied' or 'prompt' (also where the browser cannot say). */
async function cameraPermission() {
  try {
    return (await navigator.permissions.query({name: 'camera'})).state;
  } catch (e) {
    return 'prompt';
  }
}

// The faces panel (label, score, one bar per expression in the model's label order): faces.js,
// shared with the live page of `edge-fer run --serve`.
const facesPanel = new FacesPanel($('faces'), {idText: id => 'face #' + id, emptyText: 'no face in view'});
function renderFaces(result, labels) {
  $('faces-card').hidden = false;
  facesPanel.render(result, labels);
}

async function createTasks(config, delegate) {
  const vendor = new URL('vendor/mediapipe-tasks-vision/', location.href);
  const fileset = {wasmLoaderPath: new URL('vision_wasm_internal.js', vendor).href,
                   wasmBinaryPath: new URL('vision_wasm_internal.wasm', vendor).href};
  // BlazeFace through ImageEmbedder: its raw outputs (not FaceDetector's boxes, which MediaPipe
  // rounds to whole pixels of the 128 px input), decoded in fer.js exactly as edge-fer's Python does.
  const detector = await ImageEmbedder.createFromOptions(fileset, {
    baseOptions: {modelAssetPath: config.detector.file, delegate}, runningMode: 'IMAGE',
    l2Normalize: false, quantize: false});
  progress(2, 'loading the model... (expression classifier)');
  try {
    const classifier = await ImageClassifier.createFromOptions(fileset, {
      baseOptions: {modelAssetPath: config.model.file, delegate}, runningMode: 'IMAGE', maxResults: -1});
    return {detector, classifier};
  } catch (e) {
    detector.close();
    throw e;
  }
}

/** BlazeFace's two outputs from ImageEmbedder's result: regressors (N x 16) and logits (N). */
function rawOutputs(result, detector) {
  const heads = result.embeddings.map(e => Float32Array.from(e.floatEmbedding)).sort((a, b) => b.length - a.length);
  const perAnchor = 4 + 2 * detector.keypoints.length;  // box, then (x, y) per keypoint
  if (heads.length !== 2 || heads[0].length !== perAnchor * heads[1].length) {
    throw new Error(`not BlazeFace: outputs of ${heads.map(h => h.length)} values`);
  }
  return heads;
}

/** Probabilities in the model's label order (MediaPipe returns categories sorted by score). */
// The model's scores, softened by its fitted temperature as edge_fer/confidence.py soften() does:
// softmax(log(p) / T); T = 1 leaves them as they are.
function probabilities(result, labels, temperature = 1) {
  const probs = new Float32Array(labels.length);
  for (const c of result.classifications[0].categories) probs[c.index] = c.score;
  if (temperature === 1) return probs;
  const logits = Array.from(probs, p => Math.log(Math.min(Math.max(p, 1e-6), 1)) / temperature);
  const top = Math.max(...logits);
  let sum = 0;
  logits.forEach((v, k) => { probs[k] = Math.exp(v - top); sum += probs[k]; });
  return probs.map(v => v / sum);
}

class Pipeline {
  constructor(config, tasks, backend) {
    Object.assign(this, {config, tasks, backend});
    const p = config.pipeline;
    this.detectEvery = Number(params.get('detect_every') || p.detect_every);
    this.tracker = new IouTracker({...p, smooth: Number(params.get('smooth') ?? p.smooth)});
    const d = config.detector;
    this.anchors = ssdAnchors(d.input_size, d.anchor_strides, d.anchor_offset);
    this.frames = 0;
  }

  /** One frame (a canvas and its pixels) -> the result JSON the page shows. */
  process(canvas, ctx, frameIndex) {
    const {config, tasks} = this, labels = config.model.labels;
    const t0 = performance.now();
    const frame = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const detect = this.frames % this.detectEvery === 0 || !this.tracker.live().length;
    let detections = null;
    if (detect) {
      const d = config.detector, box = letterbox(frame, d.detect_width, d.input_size);
      const [regressors, logits] = rawOutputs(tasks.detector.embed(new ImageData(box.image.data, box.size, box.size)), d);
      detections = dropNested(decodeBlazeFace(regressors, logits, this.anchors, box, canvas.width, canvas.height, d));
    }
    const t1 = performance.now();
    const tracks = detect ? this.tracker.update(detections) : this.tracker.live();
    const t2 = performance.now();
    const crops = tracks.map(t => faceCrop(frame, t.face, config.model));
    const t3 = performance.now();
    // Scaling to the model's input (pixel * scale + offset) happens inside MediaPipe, from the
    // file's standard TFLite metadata; here only the crop becomes an ImageData.
    const images = crops.map(c => new ImageData(c.data, c.width, c.height));
    const t4 = performance.now();
    const probs = images.map(image => probabilities(tasks.classifier.classify(image), labels, config.model.temperature ?? 1));
    const t5 = performance.now();
    const faces = tracks.map((t, i) => {
      const p = this.tracker.smoothProbs(t, probs[i]);
      let best = 0;
      p.forEach((v, k) => { if (v > p[best]) best = k; });
      const scores = {};
      labels.forEach((name, k) => { scores[name] = Math.round(p[k] * 1e4) / 1e4; });
      const landmarks = {};
      for (const [k, [x, y]] of Object.entries(t.face.landmarks_xy || {})) {
        landmarks[k] = [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
      }
      return {id: t.id, box_xywh: t.face.box_xywh, expression: labels[best],
              score: Math.round(p[best] * 1e4) / 1e4, scores, landmarks};
    });
    const t6 = performance.now();
    this.frames += 1;
    const ms = v => Math.round(v * 1000) / 1000;
    return {frame: frameIndex, faces, backend: this.backend,
            latency_ms: {detect: ms(t1 - t0), track: ms(t2 - t1 + t6 - t5), align: ms(t3 - t2),
                          preprocess: ms(t4 - t3), classify: ms(t5 - t4), total: ms(t6 - t0)}};
  }
}

function draw(view, source, result) {
  const ctx = view.getContext('2d');
  if (view.width !== source.width || view.height !== source.height) {
    view.width = source.width; view.height = source.height;
  }
  ctx.drawImage(source, 0, 0);
  ctx.lineWidth = Math.max(2, source.width / 320);
  ctx.font = `${Math.max(14, Math.round(source.width / 40))}px sans-serif`;
  for (const f of result.faces) {
    const [x, y, w, h] = f.box_xywh;
    ctx.strokeStyle = ctx.fillStyle = colorOf(f.expression);
    ctx.strokeRect(x, y, w, h);
    for (const [px, py] of Object.values(f.landmarks)) ctx.fillRect(px - 2, py - 2, 4, 4);
    const text = `${f.expression} ${Math.round(f.score * 100)}%`;
    const tw = ctx.measureText(text).width + 8, th = parseInt(ctx.font, 10) + 6;
    ctx.fillRect(x, Math.max(0, y - th), tw, th);
    ctx.fillStyle = '#000';
    ctx.fillText(text, x + 4, Math.max(th - 6, y - 6));
  }
}

function showStatus(result, history, labels) {
  if (window.edgeFerState !== 'running') {  // the first result: the loading panel goes
    $('edge-fer-loading').hidden = true;
    $('edge-fer-prompt').hidden = true;
    $('edge-fer-view').hidden = false;
    setState('running');
  }
  renderFaces(result, labels);
  const l = result.latency_ms;
  history.push(l.total);
  if (history.length > 120) history.shift();
  $('edge-fer-status').textContent =
    `backend ${result.backend} | detect ${l.detect.toFixed(1)} ms | classify ${l.classify.toFixed(1)} ms | ` +
    `total ${l.total.toFixed(1)} ms (p50 ${percentile(history, 0.5).toFixed(1)}, ` +
    `p95 ${percentile(history, 0.95).toFixed(1)}) | faces ${result.faces.length}`;
  if ($('edge-fer-details').open) $('edge-fer-result').textContent = JSON.stringify(result, null, 1);
}

function record(result) {
  window.edgeFerResults.push(result);
}

async function runFrames(pipeline, listUrl) {
  const list = await (await fetch(listUrl)).json();
  const work = document.createElement('canvas');
  const ctx = work.getContext('2d', {willReadFrequently: true});
  const history = [];
  for (let i = 0; i < list.frames.length; i++) {
    const blob = await (await fetch(new URL(list.frames[i], new URL(listUrl, location.href)))).blob();
    const bitmap = await createImageBitmap(blob, {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
    work.width = bitmap.width; work.height = bitmap.height;
    ctx.drawImage(bitmap, 0, 0);
    const result = pipeline.process(work, ctx, i);
    draw($('edge-fer-view'), work, result);
    showStatus(result, history, pipeline.config.model.labels);
    record(result);
  }
  window.edgeFerDone = true;
}

async function runCamera(pipeline) {
  if (!window.isSecureContext) fail('the camera needs a secure context: open this page over https or on localhost');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) fail('this browser has no getUserMedia');
  const permission = await cameraPermission();
  if (permission === 'denied') fail(BLOCKED, 'blocked');
  if (permission !== 'granted') {  // say what the camera is for before the browser asks
    $('edge-fer-loading').hidden = true;
    $('edge-fer-prompt').hidden = false;
    setState('prompt');
    await new Promise(resolve => $('edge-fer-start').addEventListener('click', resolve, {once: true}));
    $('edge-fer-prompt').hidden = true;
    $('edge-fer-loading').hidden = false;
  }
  setState('asking');
  progress(LOAD_STAGES - 1, 'starting the camera...');
  const stream = await navigator.mediaDevices.getUserMedia(
    {video: {facingMode: 'user', width: {ideal: 640}, height: {ideal: 480}}, audio: false})
    .catch(cameraError);
  const video = $('edge-fer-video');
  video.srcObject = stream;
  await video.play();
  const work = document.createElement('canvas');
  const ctx = work.getContext('2d', {willReadFrequently: true});
  const history = [];
  let index = 0;
  const step = () => {
    if (video.videoWidth) {
      if (work.width !== video.videoWidth || work.height !== video.videoHeight) {
        work.width = video.videoWidth; work.height = video.videoHeight;
      }
      ctx.drawImage(video, 0, 0);
      const result = pipeline.process(work, ctx, index++);
      draw($('edge-fer-view'), work, result);
      showStatus(result, history, pipeline.config.model.labels);
      record(result);
      if (window.edgeFerResults.length > 1000) window.edgeFerResults.shift();
    }
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(step);
    else requestAnimationFrame(step);
  };
  step();
}

/** Register the service worker and, on a first visit, wait until it controls the page: it
 * downloads every file once (for offline use), and the page's own loads (the 13 MB runtime,
 * which each MediaPipe task fetches, and the models) then come from its cache instead of the
 * network a second and third time. Never blocks for good: a worker that fails, or one already
 * active but not in control (a forced reload), lets the page go on over the network. */
async function offlineCache() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext || params.get('frames')) return;  // test mode
  try {
    const registration = await navigator.serviceWorker.register('sw.js');
    const worker = registration.installing || registration.waiting;
    if (navigator.serviceWorker.controller || !worker) return;
    progress(0, 'downloading the page for offline use (first visit only)...');
    await new Promise(resolve => {
      navigator.serviceWorker.addEventListener('controllerchange', resolve, {once: true});
      worker.addEventListener('statechange', () => { if (worker.state === 'redundant') resolve(); });
      setTimeout(resolve, 300000);
    });
  } catch (e) {
    console.warn('service worker:', e);
  }
}

async function main() {
  await offlineCache();
  progress(0, 'loading the model...');
  const config = await (await fetch('edge-fer.json')).json();
  progress(1, 'loading the model... (runtime and face detector)');
  const wanted = (params.get('delegate') || config.runtime.delegate).toUpperCase() === 'GPU' ? 'GPU' : 'CPU';
  let tasks, delegate = wanted;
  try {
    tasks = await createTasks(config, wanted);
  } catch (e) {
    if (wanted !== 'GPU') fail(`could not start MediaPipe: ${e.message}`);
    console.warn('GPU delegate failed, using CPU:', e);
    delegate = 'CPU';
    tasks = await createTasks(config, 'CPU').catch(e2 => fail(`could not start MediaPipe: ${e2.message}`));
  }
  const backend = delegate === 'GPU' ? 'WebGL2 (MediaPipe GPU delegate)' : 'WASM (MediaPipe CPU, XNNPACK)';
  progress(LOAD_STAGES - 1, 'the model is ready');
  const pipeline = new Pipeline(config, tasks, backend);
  if (params.get('frames')) await runFrames(pipeline, params.get('frames'));
  else await runCamera(pipeline);
}

main().catch(e => { if (!window.edgeFerError) fail(e.message || e); });
