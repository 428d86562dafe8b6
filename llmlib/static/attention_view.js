// The attention view of llmlib.viz.attention_html (chapter 3), as plain browser JavaScript.
//
// attention_html inlines this file into every view it writes, followed by a call
// `llmlibAttentionView("<element id>")`, so a saved page or the rendered book needs no network and
// no kernel. The element holds a JSON block `<id>-data`: {title, layers L, heads H, tokens (T
// strings), weights: base64 of L*H*T*T bytes, weight = byte / 255, laid out [l][h][query][key]}.
// The view: a layer and a head selector (or the mean of the heads), the tokens coloured by how much
// the chosen query attends to each, and the (T, T) heatmap. Hovering picks the query; a click locks
// it. The playground (playground.js) passes the same data as an object, `weights` a Float32Array.
// Plain ES5 and the DOM only, so that it runs in any browser and under Node with a small stub
// (tests/attention_view_harness.js).

function llmlibAttentionView(rootId, given) {
  var root = document.getElementById(rootId);
  if (!root || root.getAttribute("data-ready") === "1") return;
  root.setAttribute("data-ready", "1");
  var data = given || JSON.parse(document.getElementById(rootId + "-data").textContent);
  var L = data.layers, H = data.heads, T = data.tokens.length, W = data.weights;
  if (typeof W === "string") {  // quantized bytes (attention_html); the playground passes floats
    var raw = atob(W);
    W = new Float32Array(raw.length);
    for (var i = 0; i < raw.length; i++) W[i] = raw.charCodeAt(i) / 255;
  }
  function weight(l, h, q, k) {  // h = -1: the mean over heads
    if (h >= 0) return W[((l * H + h) * T + q) * T + k];
    var s = 0;
    for (var j = 0; j < H; j++) s += W[((l * H + j) * T + q) * T + k];
    return s / H;
  }
  var state = {layer: 0, head: 0, query: T - 1, locked: false};
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  if (data.title) root.appendChild(el("div", "llmlib-attn-title", data.title));
  var bar = el("div", "llmlib-attn-bar");
  function selector(label, options, onchange) {
    var lab = el("label", null, label + " "), sel = el("select");
    for (var i = 0; i < options.length; i++) {
      var opt = el("option", null, options[i][0]);
      opt.value = String(options[i][1]);
      sel.appendChild(opt);
    }
    sel.addEventListener("change", function () { onchange(parseInt(sel.value, 10)); draw(); });
    lab.appendChild(sel);
    bar.appendChild(lab);
    return sel;
  }
  var layers = [], heads = [];
  for (var l = 0; l < L; l++) layers.push(["layer " + l, l]);
  for (var h = 0; h < H; h++) heads.push(["head " + h, h]);
  heads.push(["mean of heads", -1]);
  selector("Layer", layers, function (v) { state.layer = v; });
  selector("Head", heads, function (v) { state.head = v; });
  var info = el("span", "llmlib-attn-info");
  bar.appendChild(info);
  root.appendChild(bar);
  var row = el("div", "llmlib-attn-tokens"), spans = [];
  function pick(i, click) {
    if (click) { state.locked = !(state.locked && state.query === i); state.query = i; draw(); }
    else if (!state.locked && state.query !== i) { state.query = i; draw(); }
  }
  data.tokens.forEach(function (tok, i) {
    var s = el("span", "llmlib-attn-tok", tok);
    s.title = "position " + i;
    s.addEventListener("mouseenter", function () { pick(i, false); });
    s.addEventListener("click", function () { pick(i, true); });
    row.appendChild(s);
    spans.push(s);
  });
  root.appendChild(row);
  var cell = Math.max(3, Math.min(18, Math.floor(360 / T)));
  var canvas = el("canvas", "llmlib-attn-map");
  canvas.width = cell * T;
  canvas.height = cell * T;
  function rowAt(ev) {
    var r = canvas.getBoundingClientRect();
    return Math.min(T - 1, Math.max(0, Math.floor((ev.clientY - r.top) / r.height * T)));
  }
  canvas.addEventListener("mousemove", function (ev) { pick(rowAt(ev), false); });
  canvas.addEventListener("click", function (ev) { pick(rowAt(ev), true); });
  root.appendChild(canvas);
  root.appendChild(el("div", "llmlib-attn-note",
    "Hover a token (or a heatmap row) to see where it attends; click to lock. " +
    "Heatmap: row = query (the token that looks), column = key (the token looked at), " +
    "darker = more weight."));
  var ctx = canvas.getContext ? canvas.getContext("2d") : null;
  function draw() {
    var q = state.query, best = 0, bestW = -1;
    for (var k = 0; k < T; k++) {
      var a = weight(state.layer, state.head, q, k);
      if (a > bestW) { bestW = a; best = k; }
      spans[k].style.background = "rgba(37, 99, 235, " + a.toFixed(3) + ")";
      spans[k].style.color = a > 0.55 ? "#fff" : "#111";
      spans[k].style.outline = k === q ? "2px solid #f97316" : "none";
      spans[k].title = "position " + k + ": weight " + a.toFixed(3) + " from query " + q;
    }
    info.textContent = (state.locked ? "locked: " : "") + "query " + q + " \u201c" +
      data.tokens[q] + "\u201d attends most to " + best + " \u201c" + data.tokens[best] +
      "\u201d (" + bestW.toFixed(2) + ")";
    if (!ctx) return;
    for (var qq = 0; qq < T; qq++) {
      for (var kk = 0; kk < T; kk++) {
        var v = weight(state.layer, state.head, qq, kk);
        ctx.fillStyle = "rgb(" + Math.round(255 - 218 * v) + "," + Math.round(255 - 156 * v) +
          "," + Math.round(255 - 20 * v) + ")";
        ctx.fillRect(kk * cell, qq * cell, cell, cell);
      }
    }
    ctx.strokeStyle = "#f97316";
    ctx.lineWidth = 2;
    ctx.strokeRect(1, q * cell + 1, T * cell - 2, cell - 2);
  }
  draw();
}
