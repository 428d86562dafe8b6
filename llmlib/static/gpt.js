// The course's GPT in plain JavaScript: appendix A's NumPy model with chapter 7's KV cache and
// sampler, for one sequence at a time, so that the rendered book can run the model with no kernel.
//
// It reads what `GPT.save` writes: config.json, tokenizer.json (characters) and the bytes of
// model.safetensors (float32 or float16, GPT-2's names, torch's out x in layouts). Shapes as in
// the Python code: C channels, H heads, D = C / H, V vocabulary, T positions, L layers.
// Plain ES5 in one classic script (no modules: browsers refuse module scripts from file://), so it
// runs from disk, from any static server and under Node (tests/playground_harness.js).

(function (root) {
  "use strict";

  // ---- reading a model ------------------------------------------------------------------------
  function halfToFloat(h) {  // IEEE float16 bits -> number
    var sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    if (exp === 0) return sign * frac * Math.pow(2, -24);                  // subnormal
    if (exp === 31) return frac ? NaN : sign * Infinity;
    return sign * (1 + frac / 1024) * Math.pow(2, exp - 15);
  }

  function readSafetensors(bytes) {  // Uint8Array -> {name: {shape, data: Float32Array}}
    var view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    var n = view.getUint32(0, true) + view.getUint32(4, true) * 4294967296;  // header length
    var header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    var tensors = {}, start = 8 + n, half = new Float32Array(65536);
    for (var b = 0; b < 65536; b++) half[b] = halfToFloat(b);
    Object.keys(header).forEach(function (name) {
      if (name === "__metadata__") return;
      var t = header[name], lo = start + t.data_offsets[0], hi = start + t.data_offsets[1];
      var size = t.shape.reduce(function (a, s) { return a * s; }, 1), data;
      if (t.dtype === "F32") {
        data = new Float32Array(size);
        for (var i = 0; i < size; i++) data[i] = view.getFloat32(lo + 4 * i, true);
      } else if (t.dtype === "F16") {
        data = new Float32Array(size);
        for (var j = 0; j < size; j++) data[j] = half[view.getUint16(lo + 2 * j, true)];
      } else {
        throw new Error(name + " is " + t.dtype + ": the playground reads F32 and F16 weights");
      }
      if (hi - lo !== size * (t.dtype === "F32" ? 4 : 2)) throw new Error(name + ": bad offsets");
      tensors[name] = {shape: t.shape, data: data};
    });
    return tensors;
  }

  function base64Bytes(text) {  // the model scripts carry model.safetensors as base64
    var raw = atob(text), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  // ---- the tokenizer: llmlib's CharTokenizer ---------------------------------------------------
  function CharTokenizer(spec) {
    if (spec.type !== "CharTokenizer") {
      throw new Error("the playground reads character tokenizers, and this model's is a " +
                      spec.type + ": run it with llmlib generate instead");
    }
    this.chars = Array.from(spec.chars);
    this.special = spec.special_tokens || {};
    this.ids = {};
    for (var i = 0; i < this.chars.length; i++) this.ids[this.chars[i]] = i;
    this.unk = spec.unk === null || spec.unk === undefined ? null : this.special[spec.unk];
    this.vocabSize = this.chars.length + Object.keys(this.special).length;
  }
  CharTokenizer.prototype.unknown = function (text) {  // characters outside the alphabet
    var self = this;
    return Array.from(new Set(Array.from(text).filter(function (c) { return !(c in self.ids); })));
  };
  CharTokenizer.prototype.encode = function (text) {
    var bad = this.unknown(text);
    if (bad.length && this.unk === null) {
      throw new Error("the model does not know " + bad.map(JSON.stringify).join(", ") +
                      ": its alphabet is the " + this.chars.length + " characters it was " +
                      "trained on; replace them");
    }
    var self = this;
    return Array.from(text).map(function (c) { return c in self.ids ? self.ids[c] : self.unk; });
  };
  CharTokenizer.prototype.decode = function (ids) {
    var self = this;
    return ids.map(function (i) { return i < self.chars.length ? self.chars[i] : ""; }).join("");
  };

  // ---- memory: weights, KV cache and activations in one Float32Array ------------------------
  // With WebAssembly SIMD (current browsers and Node), that array is the memory of linear.wat's
  // kernel and every matrix-vector product runs there; else (or with useKernel false) in `matvec`'s
  // plain loop below, which computes the same thing about ten times slower.
  function kernelBytes() {
    var text = root.LLMLIB_LINEAR_WASM;
    if (!text || typeof WebAssembly === "undefined") return null;
    var bytes = base64Bytes(text);
    return WebAssembly.validate(bytes) ? bytes : null;  // false where SIMD is not supported
  }

  function Arena(floats, useKernel) {
    var bytes = useKernel === false ? null : kernelBytes();
    this.kernel = null;
    if (bytes) {
      var memory = new WebAssembly.Memory({initial: Math.ceil((floats + 64) * 4 / 65536)});
      var module = new WebAssembly.Module(bytes);
      this.kernel = new WebAssembly.Instance(module, {env: {memory: memory}}).exports.matvec;
      this.heap = new Float32Array(memory.buffer);
    } else {
      this.heap = new Float32Array(floats + 64);
    }
    this.used = 0;
  }
  Arena.prototype.take = function (n, from) {  // n floats, 16-byte aligned, copied from `from`
    var view = this.heap.subarray(this.used, this.used + n);
    this.used += (n + 3) & ~3;
    if (from) view.set(from);
    return view;
  };

  // y (nOut) = W (nOut, nIn) x (nIn), W's rows `stride` floats apart (W, x, y views of the arena)
  function matvec(arena, y, W, x, nOut, nIn, stride) {
    var whole = arena.kernel ? nOut - nOut % 4 : 0;  // the kernel takes rows four at a time
    if (whole) arena.kernel(y.byteOffset, W.byteOffset, x.byteOffset, whole, nIn, 4 * stride);
    for (var o = whole; o < nOut; o++) {
      var s = 0, row = o * stride;
      for (var i = 0; i < nIn; i++) s += W[row + i] * x[i];
      y[o] = s;
    }
  }

  // ---- the model: one token at a time through a KV cache ---------------------------------------
  function GPT(config, tensors, options) {
    if (config.position && config.position !== "learned") {
      throw new Error("the playground ports learned positions, not " + config.position);
    }
    var C = config.n_embd, self = this, floats = 0, name;
    this.config = config;
    this.C = C; this.H = config.n_head; this.D = C / config.n_head;
    this.V = config.vocab_size; this.T = config.context_length; this.L = config.n_layer;
    this.eps = config.layer_norm_epsilon;
    for (name in tensors) floats += tensors[name].data.length + 4;
    floats += this.L * 2 * (this.T * C + 4) + 12 * C + 2 * this.T + this.V + 64;
    var arena = this.arena = new Arena(floats, (options || {}).useKernel);
    function w(name, optional) {
      if (!tensors[name] && optional) return null;
      if (!tensors[name]) throw new Error("model.safetensors has no " + name);
      return arena.take(tensors[name].data.length, tensors[name].data);
    }
    this.wte = w("transformer.wte.weight");                        // (V, C), also the head
    this.wpe = w("transformer.wpe.weight");                        // (T, C)
    this.layers = [];
    for (var l = 0; l < this.L; l++) {
      var p = "transformer.h." + l + ".";
      this.layers.push({
        ln1w: w(p + "ln_1.weight"), ln1b: w(p + "ln_1.bias", true),
        attnW: w(p + "attn.c_attn.weight"), attnB: w(p + "attn.c_attn.bias", true),  // (3C, C)
        projW: w(p + "attn.c_proj.weight"), projB: w(p + "attn.c_proj.bias", true),  // (C, C)
        ln2w: w(p + "ln_2.weight"), ln2b: w(p + "ln_2.bias", true),
        fcW: w(p + "mlp.c_fc.weight"), fcB: w(p + "mlp.c_fc.bias", true),            // (4C, C)
        outW: w(p + "mlp.c_proj.weight"), outB: w(p + "mlp.c_proj.bias", true),      // (C, 4C)
        k: arena.take(this.T * C),    // the cache: keys (T, C), one row per position
        vt: arena.take(C * this.T)    // and values transposed (C, T), one row per channel
      });
    }
    this.lnfw = w("transformer.ln_f.weight");
    this.lnfb = w("transformer.ln_f.bias", true);
    ["x", "h", "att", "tmp"].forEach(function (n) { self[n] = arena.take(C); });  // (C)
    this.qkv = arena.take(3 * C); this.fc = arena.take(4 * C);
    this.scores = arena.take(this.T); this.logits = arena.take(this.V);
    this.length = 0;                                               // tokens in the cache
  }

  GPT.prototype.linear = function (y, W, b, x, nOut, nIn) {       // y = W x + b
    matvec(this.arena, y, W, x, nOut, nIn, nIn);
    if (b) for (var o = 0; o < nOut; o++) y[o] += b[o];
  };

  function layerNorm(y, x, weight, bias, n, eps) {  // over n channels, the biased variance
    var mean = 0, v = 0, i;
    for (i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (i = 0; i < n; i++) v += (x[i] - mean) * (x[i] - mean);
    var rstd = 1 / Math.sqrt(v / n + eps);
    for (i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd * weight[i] + (bias ? bias[i] : 0);
  }

  // GPT-2's tanh GELU, 0.5 x (1 + tanh(u)) with u = k (x + 0.044715 x^3), written as x / (1 +
  // exp(-2u)): the same function (1 + tanh(u) = 2 / (1 + exp(-2u))), one Math.exp instead of a
  // slower Math.tanh.
  var GELU_K = Math.sqrt(2 / Math.PI);
  function gelu(x) { return x / (1 + Math.exp(-2 * GELU_K * (x + 0.044715 * x * x * x))); }

  // Head h of the newest query q (3C: q | k | v) over the n cached positions -> this.att[hD:].
  GPT.prototype.attendHead = function (layer, h, n, record) {
    var D = this.D, s = this.scores, max = -Infinity, sum = 0, scale = 1 / Math.sqrt(D), j;
    var q = this.qkv.subarray(h * D, (h + 1) * D);
    matvec(this.arena, s, layer.k.subarray(h * D), q, n, D, this.C);   // q . k_j, (n)
    for (j = 0; j < n; j++) if (s[j] > max) max = s[j];
    for (j = 0; j < n; j++) { s[j] = Math.exp((s[j] - max) * scale); sum += s[j]; }
    for (j = 0; j < n; j++) s[j] /= sum;                                // softmax
    if (record) record.set(s.subarray(0, n));
    matvec(this.arena, this.att.subarray(h * D), layer.vt.subarray(h * D * this.T), s,
           D, n, this.T);                                              // sum_j p_j v_j, (D)
  };

  // Append one token at `position` to the cache; returns the logits (V) for the next token.
  // record, if given, is called with (layer, head, weights over the n positions) for each head.
  GPT.prototype.step = function (token, position, record) {
    var C = this.C, T = this.T, x = this.x, h = this.h, fc = this.fc, t = this.length, i, l;
    if (t >= T) throw new Error("the cache is full: call reset() or slide");
    for (i = 0; i < C; i++) x[i] = this.wte[token * C + i] + this.wpe[position * C + i];
    for (l = 0; l < this.L; l++) {
      var layer = this.layers[l];
      layerNorm(h, x, layer.ln1w, layer.ln1b, C, this.eps);
      this.linear(this.qkv, layer.attnW, layer.attnB, h, 3 * C, C);     // q | k | v, (3C)
      layer.k.set(this.qkv.subarray(C, 2 * C), t * C);
      for (i = 0; i < C; i++) layer.vt[i * T + t] = this.qkv[2 * C + i];
      for (var hd = 0; hd < this.H; hd++) {
        var row = record ? new Float32Array(t + 1) : null;
        this.attendHead(layer, hd, t + 1, row);
        if (record) record(l, hd, row);
      }
      this.linear(this.tmp, layer.projW, layer.projB, this.att, C, C);
      for (i = 0; i < C; i++) x[i] += this.tmp[i];
      layerNorm(h, x, layer.ln2w, layer.ln2b, C, this.eps);
      this.linear(fc, layer.fcW, layer.fcB, h, 4 * C, C);
      for (i = 0; i < 4 * C; i++) fc[i] = gelu(fc[i]);
      this.linear(this.tmp, layer.outW, layer.outB, fc, C, 4 * C);
      for (i = 0; i < C; i++) x[i] += this.tmp[i];
    }
    this.length = t + 1;
    layerNorm(h, x, this.lnfw, this.lnfb, C, this.eps);
    this.linear(this.logits, this.wte, null, h, this.V, C);             // the tied head
    return this.logits;
  };

  GPT.prototype.reset = function () { this.length = 0; };

  // Logits (T, V) of a whole sequence (<= context) and, if asked, its attention weights
  // [layer][head] -> Float32Array (T, T), row q the weights of query q (zero after q).
  GPT.prototype.forward = function (ids, withAttention) {
    var T = ids.length, V = this.V, logits = new Float32Array(T * V), att = null, self = this;
    if (T < 1 || T > this.T) throw new Error("need 1 to " + this.T + " tokens, got " + T);
    if (withAttention) {
      att = [];
      for (var l = 0; l < this.L; l++) {
        att.push([]);
        for (var h = 0; h < this.H; h++) att[l].push(new Float32Array(T * T));
      }
    }
    this.reset();
    ids.forEach(function (token, q) {
      var keep = att && function (l, h, row) { att[l][h].set(row, q * T); };
      logits.set(self.step(token, q, keep), q * V);
    });
    return {logits: logits, attention: att};
  };

  // ---- sampling: chapter 7's filters and draw -------------------------------------------------
  function softmax(z) {
    var max = -Infinity, sum = 0, p = new Float64Array(z.length), i;
    for (i = 0; i < z.length; i++) if (z[i] > max) max = z[i];
    for (i = 0; i < z.length; i++) { p[i] = z[i] === -Infinity ? 0 : Math.exp(z[i] - max); sum += p[i]; }
    for (i = 0; i < z.length; i++) p[i] /= sum;
    return p;
  }

  // logits (V) -> the logits to sample from: / temperature, then top-k, top-p, min-p
  function filterLogits(logits, s) {
    var z = Array.from(logits, function (v) { return v / s.temperature; }), V = z.length, i;
    var order = z.map(function (_, j) { return j; });
    order.sort(function (a, b) { return z[b] - z[a] || a - b; });          // most likely first
    if (s.topK) {
      var kth = z[order[Math.min(s.topK, V) - 1]];
      for (i = 0; i < V; i++) if (z[i] < kth) z[i] = -Infinity;           // ties with k-th stay
    }
    if (s.topP && s.topP < 1) {
      var p = softmax(z), above = 0;
      order.forEach(function (j, rank) {                                   // mass ranked above j
        if (rank > 0 && above >= s.topP) z[j] = -Infinity;
        above += p[j];
      });
    }
    if (s.minP) {
      var q = softmax(z), top = Math.max.apply(null, Array.from(q));
      for (i = 0; i < V; i++) if (q[i] < s.minP * top) z[i] = -Infinity;
    }
    return z;
  }

  // One token: argmax (greedy, temperature 0) or argmax(probs / noise), noise Exp(1) draws: the
  // "exponential race" torch.multinomial runs, so the same draws give the same token.
  function choose(logits, s, noise) {
    var best = 0, i, V = logits.length;
    if (!s.temperature) {
      for (i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
      return best;
    }
    var p = softmax(filterLogits(logits, s)), e = noise(V), top = -1;
    for (i = 0; i < V; i++) if (p[i] / e[i] > top) { top = p[i] / e[i]; best = i; }
    return best;
  }

  function exponentialNoise(V) {
    var e = new Float64Array(V);
    for (var i = 0; i < V; i++) e[i] = -Math.log(1 - Math.random());
    return e;
  }

  // ---- generation: llmlib.generate.Decoder for one sequence -----------------------------------
  // first() encodes the prompt's last `context` tokens; next(token) appends one; when the cache
  // is full, it slides by half a context and re-encodes what it keeps, as chapter 7 does.
  function Decoder(model, ids) {
    if (!ids.length) throw new Error("the prompt needs at least one token");
    this.model = model; this.ids = ids.slice();
  }
  Decoder.prototype.prefill = function (keep) {
    var m = this.model, tail = this.ids.slice(this.ids.length - keep), logits = null;
    m.reset();
    for (var t = 0; t < tail.length; t++) logits = m.step(tail[t], t);
    return logits;
  };
  Decoder.prototype.first = function () {
    return this.prefill(Math.min(this.ids.length, this.model.T));
  };
  Decoder.prototype.next = function (token) {
    this.ids.push(token);
    if (this.model.length === this.model.T) return this.prefill(this.model.T >> 1);
    return this.model.step(token, this.model.length);
  };

  // ids -> ids followed by n new tokens. settings: {temperature, topK, topP, minP}; noise(V)
  // gives the Exp(1) draws (default: from Math.random); onToken(id) is called for each.
  function generate(model, ids, n, settings, noise, onToken) {
    var dec = new Decoder(model, ids), logits = dec.first();
    for (var i = 0; i < n; i++) {
      var token = choose(logits, settings, noise || exponentialNoise);
      if (onToken) onToken(token);
      if (i + 1 < n) logits = dec.next(token); else dec.ids.push(token);
    }
    return dec.ids;
  }

  // A model script's payload {config, tokenizer, weights (base64 model.safetensors)}, or the
  // three files a reader opens -> {model, tokenizer}. options: {useKernel: false} for plain JS.
  function load(payload, options) {
    var bytes = typeof payload.weights === "string" ? base64Bytes(payload.weights)
                                                      : payload.weights;
    var tokenizer = new CharTokenizer(payload.tokenizer);
    if (tokenizer.vocabSize > payload.config.vocab_size) {
      throw new Error("the tokenizer has " + tokenizer.vocabSize + " tokens but the model " +
                      payload.config.vocab_size + ": they come from different models");
    }
    var model = new GPT(payload.config, readSafetensors(bytes), options);
    return {model: model, tokenizer: tokenizer};
  }

  var api = {readSafetensors: readSafetensors, CharTokenizer: CharTokenizer, GPT: GPT,
             softmax: softmax, filterLogits: filterLogits, choose: choose, Decoder: Decoder,
             generate: generate, exponentialNoise: exponentialNoise, load: load, gelu: gelu};
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.LLMLIB = api;
})(typeof self !== "undefined" ? self : this);
