// Runs llmlib/static/gpt.js under Node on a model script and answers a request, for
// tests/test_playground.py and chapter 7's section 7.11.
// Usage: node playground_harness.js gpt.js model.js request.json -> JSON on stdout.
// request: {name, useKernel (default true), logits: [[ids]...], attention: [ids] | null,
//           generate: [{ids, n, settings, noise: [[V draws] per step] | null}], time: {ids, n}}
const fs = require("fs");
const vm = require("vm");
const [gptPath, modelPath, requestPath] = process.argv.slice(2);
const path = require("path");
// The scripts run in Node's own global context, as a page's run in the window's: a vm context
// would route every global lookup (Math.exp...) through a slower proxy and halve the speed.
globalThis.self = globalThis;
const request = JSON.parse(fs.readFileSync(requestPath, "utf8"));
const kernel = path.join(path.dirname(gptPath), "linear_wasm.js");
if (request.useKernel !== false) vm.runInThisContext(fs.readFileSync(kernel, "utf8"));
vm.runInThisContext(fs.readFileSync(modelPath, "utf8"));
vm.runInThisContext(fs.readFileSync(gptPath, "utf8"));
const { model, tokenizer } = LLMLIB.load(LLMLIB_MODELS[request.name]);
const out = { vocab: tokenizer.vocabSize, kernel: model.arena.kernel !== null };
out.logits = (request.logits || []).map((ids) => Array.from(model.forward(ids).logits));
if (request.attention) {
  out.attention = model.forward(request.attention, true).attention
    .map((heads) => heads.map((a) => Array.from(a)));
}
out.generate = (request.generate || []).map((g) => {
  let step = 0;
  const noise = g.noise && (() => g.noise[step++]);
  return LLMLIB.generate(model, g.ids, g.n, g.settings, noise);
});
if (request.time) {
  const start = process.hrtime.bigint();
  LLMLIB.generate(model, request.time.ids, request.time.n, { temperature: 1 });
  out.seconds = Number(process.hrtime.bigint() - start) / 1e9;
}
if (request.encode !== undefined) {
  try { out.encoded = tokenizer.encode(request.encode); } catch (e) { out.error = e.message; }
}
console.log(JSON.stringify(out));
