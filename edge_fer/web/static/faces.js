// The faces panel, one definition for both pages that show it: the live page of `edge-fer run
// --serve` (edge_fer/serve/page.html; its server answers this file at /faces.js) and the phone
// page of `edge-fer export-web` (index.html + app.js, in this folder). Per face: the expression in
// large type with its colour and score, then one bar per expression in the model's label order,
// each with its number, in the expression's colour. The look is faces.css, beside this file.

// edge_fer/draw.py's COLORS_BGR as CSS colours: the colours of the annotated video
// (tests/web/test_web.py checks that they agree; the live page gets the same table from its server).
export const COLORS = {angry: '#dc2828', disgust: '#288c28', fear: '#a03ca0', happy: '#fac828',
                       sad: '#2878c8', surprise: '#3cc8e6', neutral: '#c8c8c8', contempt: '#a0643c'};

/** ``label``'s colour in ``colors`` (label -> CSS colour), else one derived from its name. */
export function colorOf(label, colors = COLORS) {
  if (colors && colors[label]) return colors[label];
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) % 360;
  return 'hsl(' + h + ', 60%, 60%)';
}

/** A new element: its tag, class name (or '') and text (or none). */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The faces of the latest result in ``box``, each face's element kept while its id lasts (so the
 * bars move instead of being redrawn). ``colors``: label -> CSS colour; ``idText``: a face's id as
 * shown ('face #3'); ``emptyText``: what a result without faces shows. */
export class FacesPanel {
  constructor(box, {colors = COLORS, idText = id => 'face #' + id, emptyText = 'no face in view'} = {}) {
    Object.assign(this, {box, colors, idText, emptyText});
    this.views = new Map();  // face id -> {div, expr, conf, bars: Map label -> {row, fill, num}, order}
  }

  /** Show ``result.faces`` (each {id, expression, score, scores}), one bar per entry of ``labels``. */
  render(result, labels) {
    const box = this.box, faces = result.faces || [];
    if (!faces.length) {
      this.views.clear();
      const note = box.firstElementChild;
      if (box.children.length !== 1 || !note.classList.contains('empty') || note.textContent !== this.emptyText) {
        box.replaceChildren(el('div', 'empty', this.emptyText));
      }
      return;
    }
    const shown = [];
    for (const face of faces) {
      const view = this.view(face.id, labels);
      view.expr.textContent = face.expression;
      view.expr.style.borderLeftColor = colorOf(face.expression, this.colors);
      view.conf.textContent = face.score.toFixed(2);
      for (const [label, bar] of view.bars) {
        const score = face.scores[label] || 0;
        bar.fill.style.width = (100 * score).toFixed(1) + '%';
        bar.num.textContent = score.toFixed(2);
        bar.row.classList.toggle('top', label === face.expression);
      }
      shown.push(view.div);
    }
    for (const [id, view] of this.views) if (!shown.includes(view.div)) this.views.delete(id);
    if (shown.length !== box.children.length || shown.some((d, i) => box.children[i] !== d)) box.replaceChildren(...shown);
  }

  /** Face ``id``'s element, made on first sight; its bars (re)built when ``labels`` change. */
  view(id, labels) {
    let view = this.views.get(id);
    if (!view) {
      const div = el('div', 'face'), head = el('div', 'head');
      const expr = el('span', 'expr'), conf = el('span', 'conf'), tid = el('span', 'tid', this.idText(id));
      head.append(expr, conf, tid);
      div.append(head);
      div.dataset.id = id;
      view = {div, expr, conf, bars: new Map(), order: null};
      this.views.set(id, view);
    }
    const order = labels.join(',');
    if (view.order !== order) {  // a label never seen before (the live page learns them from events)
      for (const bar of view.bars.values()) bar.row.remove();
      view.bars.clear();
      for (const label of labels) {
        const row = el('div', 'bar'), track = el('div', 'track'), fill = el('div', 'fill'), num = el('span', 'num');
        row.dataset.label = label;
        fill.style.background = colorOf(label, this.colors);
        track.append(fill);
        row.append(el('span', 'name', label), track, num);
        view.div.append(row);
        view.bars.set(label, {row, fill, num});
      }
      view.order = order;
    }
    return view;
  }
}
