// Runs the attention view's script against a minimal DOM stub and replays a few user actions.
// Usage: node harness.js view.html  -> prints JSON with what the page would show.
const fs = require("fs");
const vm = require("vm");
const html = fs.readFileSync(process.argv[2], "utf8");
const rootId = html.match(/<div id="([^"]+)"/)[1];
const dataText = html.match(/<script type="application\/json" id="[^"]+">([\s\S]*?)<\/script>/)[1];
const scripts = [...html.matchAll(/<script>\n([\s\S]*?)\n<\/script>/g)].map((m) => m[1]);
class Element {
  constructor(tag) {
    this.tagName = tag.toUpperCase(); this.children = []; this.className = ""; this.textContent = "";
    this.style = {}; this.attrs = {}; this.listeners = {}; this.value = ""; this.title = "";
    this.fills = 0;
  }
  appendChild(c) { this.children.push(c); return c; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  fire(type, ev) { (this.listeners[type] || []).forEach((fn) => fn(ev || {})); }
  getBoundingClientRect() { return { top: 0, left: 0, width: this.width, height: this.height }; }
  getContext() { const self = this; return { fillRect() { self.fills++; }, strokeRect() {}, set fillStyle(v) {}, set strokeStyle(v) {}, set lineWidth(v) {} }; }
  all() { return [this].concat(...this.children.map((c) => c.all())); }
}
const root = new Element("div");
const dataEl = new Element("script");
dataEl.textContent = dataText;
const byId = { [rootId]: root, [rootId + "-data"]: dataEl };
const document = { getElementById: (id) => byId[id] || null, createElement: (t) => new Element(t) };
const ctx = vm.createContext({ document, atob, JSON, Math, Float32Array, String, parseInt });
for (const s of scripts) vm.runInContext(s, ctx);
for (const s of scripts) vm.runInContext(s, ctx);  // a second run (re-render) must not duplicate the view
const els = root.all();
const toks = els.filter((e) => e.className === "llmlib-attn-tok");
const selects = els.filter((e) => e.tagName === "SELECT");
const canvas = els.find((e) => e.tagName === "CANVAS");
const info = els.find((e) => e.className === "llmlib-attn-info");
const bg = () => toks.map((t) => parseFloat(t.style.background.split(",")[3]));
const out = { tokens: toks.map((t) => t.textContent), options: selects.map((s) => s.children.map((o) => o.value)) };
out.initial = { bg: bg(), info: info.textContent, fills: canvas.fills };
toks[1].fire("mouseenter");
out.hover1 = { bg: bg(), info: info.textContent };
toks[2].fire("click");
toks[0].fire("mouseenter");  // locked: hovering elsewhere changes nothing
out.locked2 = { bg: bg(), info: info.textContent };
selects[0].value = String(selects[0].children.length - 1); selects[0].fire("change");
selects[1].value = "-1"; selects[1].fire("change");
out.lastLayerMean2 = { bg: bg(), info: info.textContent };
toks[2].fire("click");  // unlock
canvas.fire("mousemove", { clientY: canvas.height - 1 });
out.canvasLast = { bg: bg(), info: info.textContent, fills: canvas.fills };
console.log(JSON.stringify(out));
