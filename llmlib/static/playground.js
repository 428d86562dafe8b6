// The playground page (chapter 7): a prompt, chapter 7's sampling settings, text streamed from
// the course model as gpt.js computes it, and chapter 3's attention view of the model reading the
// text it wrote. It fills every <div id="llmlib-playground" data-model="NAME"> on the page with
// the model a model script registered as LLMLIB_MODELS[NAME] (llmlib.playground.model_script).
// No network, no kernel: the scripts and the model are files beside the page.

(function () {
  "use strict";
  var CSS = [
    "#llmlib-playground {font-family: system-ui, -apple-system, 'Segoe UI', sans-serif;",
    "  font-size: 14px; color: #111; background: #fff; border: 1px solid #d4d4d8;",
    "  border-radius: 6px; padding: 10px 12px; margin: 8px 0;}",
    "#llmlib-playground textarea {width: 100%; box-sizing: border-box; font: 14px ui-monospace,",
    "  Menlo, Consolas, monospace; color: #111; background: #fff;}",
    "#llmlib-playground .pg-row {display: flex; flex-wrap: wrap; gap: 10px 14px;",
    "  align-items: center; margin: 6px 0;}",
    "#llmlib-playground input {width: 5.5em; font-size: 14px; color: #111; background: #fff;}",
    "#llmlib-playground button {font-size: 14px; padding: 3px 12px; cursor: pointer;}",
    "#llmlib-playground .pg-output {white-space: pre-wrap; font: 14px/1.45 ui-monospace, Menlo,",
    "  Consolas, monospace; background: #fafafa; border: 1px solid #e4e4e7; padding: 8px;",
    "  min-height: 6em; max-height: 28em; overflow-y: auto; margin: 6px 0;}",
    "#llmlib-playground .pg-prompt {color: #6b7280;}",
    "#llmlib-playground .pg-status {color: #444; font-size: 13px; min-height: 1.3em;}",
    "#llmlib-playground .pg-status.pg-error {color: #b91c1c;}",
    "#llmlib-playground .llmlib-attn {border-top: 1px solid #e4e4e7; margin-top: 8px;",
    "  padding-top: 6px; font-size: 13px;}",
    "#llmlib-playground .llmlib-attn-title {font-weight: 600; margin-bottom: 4px;}",
    "#llmlib-playground .llmlib-attn-bar {display: flex; flex-wrap: wrap; gap: 12px;",
    "  align-items: center; margin-bottom: 6px;}",
    "#llmlib-playground .llmlib-attn-info {color: #444; font-size: 12px;}",
    "#llmlib-playground .llmlib-attn-tokens {display: flex; flex-wrap: wrap; gap: 3px;",
    "  margin: 6px 0; line-height: 1.9;}",
    "#llmlib-playground .llmlib-attn-tok {font-family: ui-monospace, Menlo, Consolas, monospace;",
    "  padding: 0 4px; border-radius: 3px; border: 1px solid #e4e4e7; cursor: pointer;",
    "  white-space: pre;}",
    "#llmlib-playground .llmlib-attn-map {border: 1px solid #d4d4d8; cursor: crosshair;",
    "  image-rendering: pixelated; max-width: 100%;}",
    "#llmlib-playground .llmlib-attn-note {color: #666; font-size: 11px;}"
  ].join("\n");

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function field(row, label, attrs) {
    var lab = el("label", null, label + " "), input = el("input", attrs);
    lab.appendChild(input);
    row.appendChild(lab);
    return input;
  }
  function shown(ch) {  // whitespace made visible, as llmlib.viz does for the attention view
    return ch === " " ? "\u00b7" : ch === "\n" ? "\u21b5" : ch === "\t" ? "\u21e5" : ch;
  }
  function seeded(seed) {  // mulberry32: a small PRNG, so that a seed gives the same text again
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      var t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  // The settings as chapter 7's Sampling checks them: a message for the first bad one, or null.
  function readSettings(ui) {
    var n = Number(ui.tokens.value), t = Number(ui.temperature.value);
    var k = ui.topK.value.trim(), p = ui.topP.value.trim(), seed = ui.seed.value.trim();
    if (!(Number.isInteger(n) && n >= 1 && n <= 5000)) return "Tokens must be a whole number from 1 to 5000.";
    if (!(t >= 0 && t < Infinity) || ui.temperature.value.trim() === "") {
      return "Temperature must be a number >= 0 (0 is greedy).";
    }
    if (k !== "" && !(Number.isInteger(Number(k)) && Number(k) >= 1)) {
      return "Top-k must be a whole number >= 1, or empty to keep every token.";
    }
    if (p !== "" && !(Number(p) > 0 && Number(p) <= 1)) {
      return "Top-p must be in (0, 1], or empty to keep every token.";
    }
    if (t === 0 && (k !== "" || p !== "")) {
      return "Temperature 0 is greedy: empty top-k and top-p, or set a temperature above 0.";
    }
    if (seed !== "" && !Number.isInteger(Number(seed))) return "The seed must be a whole number.";
    return {tokens: n, seed: seed === "" ? null : Number(seed),
            sampling: {temperature: t, topK: k === "" ? null : Number(k),
                       topP: p === "" ? null : Number(p)}};
  }

  function Playground(root) {
    var name = root.getAttribute("data-model") || "course", self = this;
    var payload = (window.LLMLIB_MODELS || {})[name];
    root.innerHTML = "";
    var style = el("style");
    style.textContent = CSS;
    root.appendChild(style);
    this.root = root;
    this.status = el("div", {"class": "pg-status"});
    if (!payload || !window.LLMLIB) {
      root.appendChild(this.status);
      return this.say("The model script for \u201c" + name + "\u201d did not load: the page " +
                      "needs " + name + ".model.js and gpt.js beside it.", true);
    }
    var start = performance.now(), loaded = LLMLIB.load(payload);
    this.model = loaded.model; this.tokenizer = loaded.tokenizer;
    var ui = this.ui = {};
    ui.prompt = el("textarea", {rows: 3, "aria-label": "prompt"});
    ui.prompt.value = "ROMEO:\nBut soft, what light";
    root.appendChild(ui.prompt);
    var row = el("div", {"class": "pg-row"});
    ui.tokens = field(row, "Tokens", {type: "number", min: 1, max: 5000, value: 300});
    ui.temperature = field(row, "Temperature", {type: "number", min: 0, step: 0.1, value: 0.8});
    ui.topK = field(row, "Top-k", {type: "number", min: 1, step: 1, placeholder: "all"});
    ui.topP = field(row, "Top-p", {type: "number", min: 0, max: 1, step: 0.05, value: 0.95});
    ui.seed = field(row, "Seed", {type: "number", step: 1, placeholder: "random"});
    ui.go = el("button", {type: "button"}, "Generate");
    ui.stop = el("button", {type: "button"}, "Stop");
    ui.stop.disabled = true;
    row.appendChild(ui.go); row.appendChild(ui.stop);
    root.appendChild(row);
    root.appendChild(this.status);
    this.output = el("div", {"class": "pg-output", "aria-live": "polite"});
    root.appendChild(this.output);
    var arow = el("div", {"class": "pg-row"});
    ui.window = field(arow, "Attention over the last", {type: "number", min: 2, max: this.model.T,
                                                        value: 64});
    arow.appendChild(document.createTextNode("characters of the text"));
    root.appendChild(arow);
    this.attention = el("div");
    root.appendChild(this.attention);
    ui.go.addEventListener("click", function () { self.generate(); });
    ui.stop.addEventListener("click", function () { self.stopped = true; });
    ui.window.addEventListener("change", function () { if (self.ids) self.showAttention(); });
    var c = this.model.config;
    this.say("Model \u201c" + name + "\u201d: " + c.n_layer + " layers \u00d7 " + c.n_embd +
             ", " + this.tokenizer.chars.length + " characters, context " + c.context_length +
             "; read in " + Math.round(performance.now() - start) + " ms. Linear layers run in " +
             (this.model.arena.kernel ? "WebAssembly SIMD." : "plain JavaScript (no SIMD here)."));
    root.setAttribute("data-state", "ready");
  }

  Playground.prototype.say = function (text, error) {
    this.status.textContent = text;
    this.status.className = "pg-status" + (error ? " pg-error" : "");
    if (error) this.root.setAttribute("data-state", "error");
  };

  Playground.prototype.generate = function () {
    var self = this, ui = this.ui, settings = readSettings(ui), ids;
    if (typeof settings === "string") return this.say(settings, true);
    if (!ui.prompt.value) return this.say("Type a prompt: the model continues it.", true);
    try { ids = this.tokenizer.encode(ui.prompt.value); } catch (e) { return this.say(e.message, true); }
    var random = settings.seed === null ? Math.random : seeded(settings.seed);
    var noise = function (V) {  // Exp(1) draws for chapter 7's exponential race
      var e = new Float64Array(V);
      for (var i = 0; i < V; i++) e[i] = -Math.log(1 - random());
      return e;
    };
    var eot = this.tokenizer.chars.length;  // special tokens come after the characters
    var decoder = new LLMLIB.Decoder(this.model, ids), made = 0, busy = 0, logits = null;
    this.output.textContent = "";
    this.output.appendChild(el("span", {"class": "pg-prompt"}, ui.prompt.value));
    var text = el("span", {"class": "pg-new"});
    this.output.appendChild(text);
    this.stopped = false; this.ids = null;
    ui.go.disabled = true; ui.stop.disabled = false;
    this.root.setAttribute("data-state", "running");
    function finish(why) {
      self.ids = decoder.ids;
      ui.go.disabled = false; ui.stop.disabled = true;
      var rate = made / (busy / 1000);
      self.say(made + " tokens in " + (busy / 1000).toFixed(2) + " s of model time: " +
               Math.round(rate) + " tokens/s" + (why ? " (" + why + ")" : "") + ".");
      self.root.setAttribute("data-tokens-per-s", String(rate));
      self.showAttention();
      self.root.setAttribute("data-state", "done");
    }
    function chunk() {  // about 40 ms of tokens, then the browser draws them
      var t0 = performance.now(), piece = "";
      if (logits === null) logits = decoder.first();
      while (made < settings.tokens && !self.stopped && performance.now() - t0 < 40) {
        var token = LLMLIB.choose(logits, settings.sampling, noise);
        made++;
        if (token >= eot) { decoder.ids.push(token); self.stopped = "end of text"; break; }
        piece += self.tokenizer.decode([token]);
        logits = made < settings.tokens ? decoder.next(token) : (decoder.ids.push(token), null);
      }
      busy += performance.now() - t0;
      text.textContent += piece;
      self.output.scrollTop = self.output.scrollHeight;
      self.say(made + " tokens, " + Math.round(made / (busy / 1000)) + " tokens/s\u2026");
      if (made < settings.tokens && !self.stopped) return setTimeout(chunk, 0);
      finish(self.stopped === true ? "stopped" : self.stopped || "");
    }
    setTimeout(chunk, 0);
  };

  // Chapter 3's view of the model reading the last characters of the text afresh (positions
  // from 0): every layer's and head's weights, from one forward pass with attention kept.
  Playground.prototype.showAttention = function () {
    var n = Math.max(2, Math.min(this.model.T, Math.floor(Number(this.ui.window.value)) || 64));
    var ids = this.ids.filter(function (i) { return i < this.tokenizer.chars.length; }, this);
    ids = ids.slice(Math.max(0, ids.length - n));
    var att = this.model.forward(ids, true).attention, T = ids.length, L = att.length;
    var H = att[0].length, weights = new Float32Array(L * H * T * T);
    for (var l = 0; l < L; l++) {
      for (var h = 0; h < H; h++) weights.set(att[l][h], (l * H + h) * T * T);
    }
    var tokenizer = this.tokenizer;
    this.attention.innerHTML = "";
    var view = el("div", {id: "llmlib-playground-attention", "class": "llmlib-attn"});
    this.attention.appendChild(view);
    llmlibAttentionView(view.id, {
      title: "The model reading the last " + T + " characters (positions from 0)",
      layers: L, heads: H, weights: weights,
      tokens: ids.map(function (i) { return shown(tokenizer.decode([i])); })});
    this.attentionIds = ids;
  };

  function start() {
    var roots = document.querySelectorAll("#llmlib-playground");
    for (var i = 0; i < roots.length; i++) {
      try { window.llmlibPlayground = new Playground(roots[i]); } catch (e) {
        roots[i].textContent = "The playground could not start: " + e.message;
        roots[i].setAttribute("data-state", "error");
      }
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
