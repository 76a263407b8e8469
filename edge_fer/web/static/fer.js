// The page's pure steps, in the order and with the numbers of edge-fer's Python runtime:
// letterbox -> BlazeFace decode + weighted NMS -> faces (to_faces), duplicate drop (drop_nested),
// crop (box or aligned to the model's framing template: align.py), resize (OpenCV's INTER_AREA /
// INTER_LINEAR), IoU tracks with EMA smoothing (IouTracker). No DOM here: frames are ImageData-like {width, height, data: RGBA}.


/** BlazeFace's input as edge-fer's Python detector makes it (detectors.downscale, then
 * BlazeFaceDetector._letterbox): the frame area-shrunk to ``detectWidth`` wide, then area-resized
 * into a black ``size`` x ``size`` square, centred. */
export function letterbox(frame, detectWidth, size) {
  let small = frame, factor = 1;
  if (detectWidth && frame.width > detectWidth) {
    factor = frame.width / detectWidth;
    small = resizeTo(frame, detectWidth, Math.max(1, Math.round(frame.height / factor)));
  }
  const scale = size / Math.max(small.width, small.height);
  const w = Math.max(1, Math.round(small.width * scale)), h = Math.max(1, Math.round(small.height * scale));
  const dx = Math.floor((size - w) / 2), dy = Math.floor((size - h) / 2);
  const resized = resizeTo(small, w, h), out = newImage(size, size);
  for (let i = 3; i < out.data.length; i += 4) out.data[i] = 255;
  for (let y = 0; y < h; y++) {
    out.data.set(resized.data.subarray(y * w * 4, (y + 1) * w * 4), ((y + dy) * size + dx) * 4);
  }
  return {image: out, size, scale, dx, dy, factor};
}

/** BlazeFace's anchor centres (x, y in 0..1), in its output order (blazeface.ssd_anchors). */
export function ssdAnchors(inputSize, strides, offset) {
  const centres = [];
  let layer = 0;
  while (layer < strides.length) {
    const stride = strides[layer];
    let perCell = 0;
    while (layer < strides.length && strides[layer] === stride) { perCell += 2; layer += 1; }
    const grid = Math.ceil(inputSize / stride);
    for (let y = 0; y < grid; y++) {
      for (let x = 0; x < grid; x++) {
        for (let k = 0; k < perCell; k++) centres.push([(x + offset) / grid, (y + offset) / grid]);
      }
    }
  }
  return centres;
}

function iouCorners(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h, union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return inter / Math.max(union, 1e-9);
}

/** BlazeFace's raw outputs (regressors N x 16, logits N) on ``box`` (a letterbox) -> faces
 * {box_xywh, score, landmarks_xy, detector} in frame pixels: edge-fer's decode, MediaPipe's
 * weighted NMS (keypoints averaged too), then to_faces (clip, min size, best max_faces). */
export function decodeBlazeFace(regressors, logits, anchors, box, width, height, detector) {
  const size = detector.input_size, rows = [];
  for (let i = 0; i < anchors.length; i++) {
    const score = 1 / (1 + Math.exp(-Math.min(80, Math.max(-80, logits[i]))));
    if (score < detector.min_confidence) continue;
    const n = 4 + 2 * detector.keypoints.length, r = regressors.subarray(i * n, i * n + n);
    const ax = anchors[i][0] * size, ay = anchors[i][1] * size;
    const cx = r[0] + ax, cy = r[1] + ay, hw = r[2] / 2, hh = r[3] / 2;
    const row = [cx - hw, cy - hh, cx + hw, cy + hh];
    for (let k = 0; k < detector.keypoints.length; k++) row.push(r[4 + 2 * k] + ax, r[5 + 2 * k] + ay);
    rows.push({row, score});
  }
  let order = rows.map((_, i) => i).sort((a, b) => rows[b].score - rows[a].score);
  const kept = [];
  while (order.length) {
    const best = rows[order[0]].row, inside = [], outside = [];
    for (const i of order) (iouCorners(best, rows[i].row) > detector.nms_iou ? inside : outside).push(i);
    const mean = new Array(best.length).fill(0);
    let total = 0;
    for (const i of inside) {
      total += rows[i].score;
      rows[i].row.forEach((v, k) => { mean[k] += v * rows[i].score; });
    }
    kept.push({row: mean.map(v => v / total), score: rows[order[0]].score});
    order = outside;
  }
  const faces = [];
  for (const {row, score} of kept) {
    const frame = row.map((v, k) => (v - (k % 2 ? box.dy : box.dx)) / box.scale * box.factor);
    const x0 = Math.max(0, frame[0]), y0 = Math.max(0, frame[1]);
    const x1 = Math.min(width, frame[2]), y1 = Math.min(height, frame[3]);
    const w = Math.round(x1 - x0), h = Math.round(y1 - y0);
    if (Math.min(w, h) < detector.min_face_px) continue;
    const landmarks = {};
    detector.keypoints.forEach((name, k) => { landmarks[name] = [frame[4 + 2 * k], frame[5 + 2 * k]]; });
    faces.push({box_xywh: [Math.round(x0), Math.round(y0), w, h], score: Math.min(1, Math.max(0, score)),
                landmarks_xy: landmarks, detector: detector.name});
  }
  faces.sort((a, b) => b.score - a.score);
  return faces.slice(0, detector.max_faces);
}

/** Drop a face whose centre lies inside a better (score, then size) kept face's box. */
export function dropNested(faces) {
  const area = f => f.box_xywh[2] * f.box_xywh[3];
  const order = [...faces].sort((a, b) => (b.score - a.score) || (area(b) - area(a)));
  const kept = [];
  for (const f of order) {
    const [x, y, w, h] = f.box_xywh, cx = x + w / 2, cy = y + h / 2;
    if (!kept.some(k => k.box_xywh[0] <= cx && cx <= k.box_xywh[0] + k.box_xywh[2] &&
                        k.box_xywh[1] <= cy && cy <= k.box_xywh[1] + k.box_xywh[3])) kept.push(f);
  }
  return faces.filter(f => kept.includes(f));
}

export function iouXywh(a, b) {
  const iw = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih, union = a[2] * a[3] + b[2] * b[3] - inter;
  return union > 0 ? inter / union : 0;
}

/** Greedy IoU track ids and per-track EMA of probabilities (edge_fer.tracking.IouTracker). */
export class IouTracker {
  constructor({iou_threshold, max_track_misses, smooth}) {
    Object.assign(this, {iouThreshold: iou_threshold, maxMisses: max_track_misses, smooth});
    this.tracks = [];
    this.nextId = 1;
  }

  update(faces) {
    const pairs = [];
    this.tracks.forEach((t, ti) => faces.forEach((f, fi) => pairs.push([iouXywh(t.face.box_xywh, f.box_xywh), ti, fi])));
    pairs.sort((p, q) => (q[0] - p[0]) || (q[1] - p[1]) || (q[2] - p[2]));
    const matched = new Map(), usedTracks = new Set();
    for (const [iou, ti, fi] of pairs) {
      if (iou < this.iouThreshold) break;
      if (usedTracks.has(ti) || matched.has(fi)) continue;
      const track = this.tracks[ti];
      Object.assign(track, {face: faces[fi], misses: 0});
      matched.set(fi, track);
      usedTracks.add(ti);
    }
    this.tracks.forEach((t, ti) => { if (!usedTracks.has(ti)) t.misses += 1; });
    this.tracks = this.tracks.filter(t => t.misses <= this.maxMisses);
    faces.forEach((face, fi) => {
      if (!matched.has(fi)) {
        const track = {id: this.nextId++, face, probs: null, misses: 0};
        this.tracks.push(track);
        matched.set(fi, track);
      }
    });
    return faces.map((_, fi) => matched.get(fi));
  }

  live() { return this.tracks.filter(t => t.misses === 0); }

  smoothProbs(track, probs) {
    if (this.smooth === 0 || track.probs === null) track.probs = Float32Array.from(probs);
    else track.probs = track.probs.map((p, i) => this.smooth * p + (1 - this.smooth) * probs[i]);
    return track.probs;
  }
}

// ---- crops ------------------------------------------------------------------------------------

function newImage(width, height) {
  return {width, height, data: new Uint8ClampedArray(width * height * 4)};
}

function subImage(frame, x0, y0, x1, y1) {
  const out = newImage(x1 - x0, y1 - y0);
  for (let y = y0; y < y1; y++) {
    out.data.set(frame.data.subarray((y * frame.width + x0) * 4, (y * frame.width + x1) * 4), (y - y0) * out.width * 4);
  }
  return out;
}

// Resampling taps along one axis, flat: destination d reads source index[k] with weight[k] for
// k in start[d] .. start[d + 1] - 1.
function taps(lists) {
  const start = new Int32Array(lists.length + 1);
  lists.forEach((l, d) => { start[d + 1] = start[d] + l.length; });
  const index = new Int32Array(start[lists.length]), weight = new Float64Array(start[lists.length]);
  lists.forEach((l, d) => l.forEach(([i, w], k) => { index[start[d] + k] = i; weight[start[d] + k] = w; }));
  return {start, index, weight};
}

// OpenCV's INTER_AREA weights along one axis (resizeArea's computeResizeAreaTab).
function areaTable(srcSize, dstSize) {
  const scale = srcSize / dstSize, table = [];
  for (let d = 0; d < dstSize; d++) {
    const f1 = d * scale, f2 = f1 + scale, cell = Math.min(scale, srcSize - f1);
    const s1 = Math.ceil(f1), s2 = Math.floor(f2), row = [];
    if (s1 - f1 > 1e-3) row.push([s1 - 1, (s1 - f1) / cell]);
    for (let s = s1; s < s2; s++) row.push([s, 1 / cell]);
    if (f2 - s2 > 1e-3 && s2 < srcSize) row.push([s2, (Math.min(Math.min(f2 - s2, 1), cell)) / cell]);
    table.push(row);
  }
  return taps(table);
}

// OpenCV's INTER_LINEAR taps along one axis (half-pixel centres, edge clamped).
function linearTable(srcSize, dstSize) {
  const scale = srcSize / dstSize, table = [];
  for (let d = 0; d < dstSize; d++) {
    let f = (d + 0.5) * scale - 0.5, s = Math.floor(f);
    f -= s;
    if (s < 0) { s = 0; f = 0; }
    if (s >= srcSize - 1) { s = srcSize - 1; f = 0; }
    table.push(f ? [[s, 1 - f], [s + 1, f]] : [[s, 1]]);
  }
  return taps(table);
}

/** ``image`` at width x height: area averaging when shrinking, bilinear when enlarging (resize_to).
 * Separable: columns of each needed row first into floats, then rows, as OpenCV accumulates. */
export function resizeTo(image, width, height) {
  if (image.width === width && image.height === height) return image;
  const shrink = image.height > height || image.width > width;
  const tx = (shrink ? areaTable : linearTable)(image.width, width);
  const ty = (shrink ? areaTable : linearTable)(image.height, height);
  const src = image.data, W = image.width, rows = new Float64Array(image.height * width * 3);
  const needed = new Uint8Array(image.height);
  for (let k = 0; k < ty.index.length; k++) needed[ty.index[k]] = 1;
  for (let y = 0; y < image.height; y++) {
    if (!needed[y]) continue;
    const base = y * W;
    for (let x = 0; x < width; x++) {
      let r = 0, g = 0, b = 0;
      for (let k = tx.start[x]; k < tx.start[x + 1]; k++) {
        const i = (base + tx.index[k]) * 4, w = tx.weight[k];
        r += src[i] * w; g += src[i + 1] * w; b += src[i + 2] * w;
      }
      const o = (y * width + x) * 3;
      rows[o] = r; rows[o + 1] = g; rows[o + 2] = b;
    }
  }
  const out = newImage(width, height), dst = out.data;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0, g = 0, b = 0;
      for (let k = ty.start[y]; k < ty.start[y + 1]; k++) {
        const i = (ty.index[k] * width + x) * 3, w = ty.weight[k];
        r += rows[i] * w; g += rows[i + 1] * w; b += rows[i + 2] * w;
      }
      const o = (y * width + x) * 4;
      dst[o] = Math.round(r); dst[o + 1] = Math.round(g); dst[o + 2] = Math.round(b); dst[o + 3] = 255;
    }
  }
  return out;
}

/** The box grown by ``margin`` of its size on each side, clipped to the frame (crop_face). */
export function cropBox(frame, box, margin) {
  const [x, y, w, h] = box;
  const x0 = Math.max(0, Math.round(x - margin * w)), y0 = Math.max(0, Math.round(y - margin * h));
  const x1 = Math.min(frame.width, Math.round(x + w + margin * w));
  const y1 = Math.min(frame.height, Math.round(y + h + margin * h));
  return subImage(frame, x0, y0, x1, y1);
}

// ---- framing: a port of edge_fer/align.py (same choices, same conventions) ---------------------

//: Landmarks that take part in alignment (ears are unstable under head turns).
export const ALIGN_POINTS = ['right_eye', 'left_eye', 'nose', 'mouth', 'mouth_right', 'mouth_left'];

/** Least-squares similarity [a, -b, tx, b, a, ty] (2x3 row-major) taking ``src`` onto ``dst``. */
export function similarityTransform(src, dst) {
  const n = src.length;
  let mx = 0, my = 0, mu = 0, mv = 0;
  for (let i = 0; i < n; i++) { mx += src[i][0]; my += src[i][1]; mu += dst[i][0]; mv += dst[i][1]; }
  mx /= n; my /= n; mu /= n; mv /= n;
  let sxx = 0, sab = 0, sba = 0;
  for (let i = 0; i < n; i++) {
    const x = src[i][0] - mx, y = src[i][1] - my, u = dst[i][0] - mu, v = dst[i][1] - mv;
    sxx += x * x + y * y; sab += x * u + y * v; sba += x * v - y * u;
  }
  const a = sab / sxx, b = sba / sxx;
  return [a, -b, mu - (a * mx - b * my), b, a, mv - (b * mx + a * my)];
}

/** The template for this face's detector, or another one sharing >= 3 of its align points. */
function templateFor(framing, face) {
  if (!face.landmarks_xy || !framing.points || !Object.keys(framing.points).length) return null;
  if (face.detector in framing.points) return framing.points[face.detector];
  for (const points of Object.values(framing.points)) {
    if (ALIGN_POINTS.filter(k => k in points && k in face.landmarks_xy).length >= 3) return points;
  }
  return null;
}

/** The 2x3 full frame -> model input transform (edge convention), or null for a plain box crop. */
export function faceToInputTransform(face, model) {
  const framing = model.framing;
  if (!framing) return null;
  const [h, w] = model.input_size_hw;
  const template = templateFor(framing, face);
  if (template) {
    const names = ALIGN_POINTS.filter(k => k in template && k in face.landmarks_xy);
    if (names.length >= 2) {
      return similarityTransform(names.map(k => face.landmarks_xy[k]),
                                 names.map(k => [template[k][0] * w, template[k][1] * h]));
    }
  }
  const box = (framing.boxes || {})[face.detector || ''];
  if (!box) return null;
  const [x, y, bw, bh] = face.box_xywh, [dx, dy, sw, sh] = box;
  const fw = sw * bw, fh = sh * bh, fx = x + bw / 2 + dx * bw - fw / 2, fy = y + bh / 2 + dy * bh - fh / 2;
  const sx = w / fw, sy = h / fh;
  return [sx, 0, -fx * sx, 0, sy, -fy * sy];
}

/** Edge convention -> OpenCV's pixel-centre convention: t += A (0.5, 0.5) - 0.5. */
function centred(m) {
  return [m[0], m[1], m[2] + 0.5 * (m[0] + m[1]) - 0.5, m[3], m[4], m[5] + 0.5 * (m[3] + m[4]) - 0.5];
}

function invert(m) {
  const [a, b, c, d, e, f] = m, det = a * e - b * d;
  const ia = e / det, ib = -b / det, id = -d / det, ie = a / det;
  return [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)];
}

/** cv2.warpAffine(..., INTER_LINEAR, BORDER_REPLICATE) with a pixel-centre 2x3 ``m``. */
function warpAffine(frame, m, width, height) {
  const inv = invert(m), out = newImage(width, height), src = frame.data, W = frame.width, H = frame.height;
  const clampX = v => Math.min(W - 1, Math.max(0, v)), clampY = v => Math.min(H - 1, Math.max(0, v));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = inv[0] * x + inv[1] * y + inv[2], sy = inv[3] * x + inv[4] * y + inv[5];
      const x0 = Math.floor(sx), y0 = Math.floor(sy), fx = sx - x0, fy = sy - y0;
      const xa = clampX(x0), xb = clampX(x0 + 1), ya = clampY(y0), yb = clampY(y0 + 1);
      const i00 = (ya * W + xa) * 4, i01 = (ya * W + xb) * 4, i10 = (yb * W + xa) * 4, i11 = (yb * W + xb) * 4;
      const o = (y * width + x) * 4;
      for (let ch = 0; ch < 3; ch++) {
        const top = src[i00 + ch] * (1 - fx) + src[i01 + ch] * fx;
        const bottom = src[i10 + ch] * (1 - fx) + src[i11 + ch] * fx;
        out.data[o + ch] = Math.round(top * (1 - fy) + bottom * fy);
      }
      out.data[o + 3] = 255;
    }
  }
  return out;
}

const mul = (m, n) => [  // 2x3 m after 3x3 affine n (given as 2x3)
  m[0] * n[0] + m[1] * n[3], m[0] * n[1] + m[1] * n[4], m[0] * n[2] + m[1] * n[5] + m[2],
  m[3] * n[0] + m[4] * n[3], m[3] * n[1] + m[4] * n[4], m[3] * n[2] + m[4] * n[5] + m[5]];

const floorDiv = (a, b) => Math.floor(a / b), mod = (a, b) => ((a % b) + b) % b;  // Python's // and %

/** The frame through ``m`` (edge convention) at width x height, like align.warp_to_input: large
 * faces are first shrunk by an integer factor with area averaging (on the output origin's grid
 * of that factor, whole multiples of it), pixels beyond the frame replicate its edge. */
export function warpToInput(frame, m, width, height) {
  const scale = Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));  // input px per frame px
  let factor = scale > 0 ? Math.max(1, Math.floor(1 / scale)) : 1;
  const W = frame.width, H = frame.height, inv = invert(m);
  const corners = [[0, 0], [width, 0], [0, height], [width, height]].map(
    ([x, y]) => [inv[0] * x + inv[1] * y + inv[2], inv[3] * x + inv[4] * y + inv[5]]);
  const margin = 2 + factor;
  let x0 = Math.floor(Math.min(...corners.map(c => c[0]))) - margin;
  let y0 = Math.floor(Math.min(...corners.map(c => c[1]))) - margin;
  let x1 = Math.ceil(Math.max(...corners.map(c => c[0]))) + margin;
  let y1 = Math.ceil(Math.max(...corners.map(c => c[1]))) + margin;
  if (factor >= 2) {
    const ox = Math.floor(corners[0][0]), oy = Math.floor(corners[0][1]);
    x0 -= mod(x0 - ox, factor); y0 -= mod(y0 - oy, factor);
    x0 += factor * Math.max(0, floorDiv(-x0 + factor - 1, factor));
    y0 += factor * Math.max(0, floorDiv(-y0 + factor - 1, factor));
  }
  x0 = Math.max(0, x0); y0 = Math.max(0, y0); x1 = Math.min(W, x1); y1 = Math.min(H, y1);
  if (x1 - x0 < 2 * factor || y1 - y0 < 2 * factor) { x0 = 0; y0 = 0; x1 = W; y1 = H; factor = 1; }
  if (factor >= 2) {
    x1 = x0 + floorDiv(x1 - x0, factor) * factor; y1 = y0 + floorDiv(y1 - y0, factor) * factor;
  }
  let roi = subImage(frame, x0, y0, x1, y1);
  if (factor >= 2) roi = resizeTo(roi, (x1 - x0) / factor, (y1 - y0) / factor);
  return warpAffine(roi, centred(mul(m, [factor, 0, x0, 0, factor, y0])), width, height);
}

/** The model's input crop of one face (classifier.frame_face): aligned or calibrated box at
 * the input size where the model's framing covers this face, else the plain box resized. */
export function faceCrop(frame, face, model) {
  const [h, w] = model.input_size_hw;
  const m = faceToInputTransform(face, model);
  if (m) return warpToInput(frame, m, w, h);
  return resizeTo(cropBox(frame, face.box_xywh, model.crop_margin || 0), w, h);
}

export function percentile(values, q) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
