/* imgcls in the browser: an exported model (uint8 images in, probabilities out) run by
 * onnxruntime-web's WebAssembly backend, with no server.
 *
 * The page turns any picture (a file, a camera frame) into what the graph takes exactly as
 * imgcls does in Python: RGB pixels as decoded (no colour-space conversion), resized to the
 * model's square input by its resize rule (squash, crop or pad) with area averaging when
 * shrinking and bilinear interpolation when enlarging (OpenCV's INTER_AREA / INTER_LINEAR).
 * Normalisation, test-time views, softmax, calibration and the decision rule are inside the
 * graph.
 *
 *   const clf = await ImgclsWeb.create(window.IMGCLS_MODEL, window.IMGCLS_ORT);   // offline folder
 *   const clf = await ImgclsWeb.create({ meta, onnx: bytes }, null, { wasmPaths: "/web/" });  // served
 *   const answer = await clf.classify(await createImageBitmap(file));
 *   answer.label, answer.predictions[0].probability, answer.ms
 *
 * A classic script (not a module) so that it also runs from a page opened as a file.
 */
"use strict";
(function (global) {
  function base64Bytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function roundHalfEven(x) {  // Python's round(), as the resize rule's pad arithmetic uses
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  // One axis of a separable resize: for each output index the source indices and weights.
  function areaTaps(src, dst) {
    const scale = src / dst;
    const taps = [];
    for (let d = 0; d < dst; d++) {
      const lo = d * scale, hi = Math.min(src, lo + scale);
      const row = [];
      for (let s = Math.floor(lo); s < Math.ceil(hi - 1e-9); s++) {
        const w = Math.min(hi, s + 1) - Math.max(lo, s);
        if (w > 1e-9) row.push(s, w / scale);
      }
      taps.push(row);
    }
    return taps;
  }

  function linearTaps(src, dst) {
    const scale = src / dst;
    const taps = [];
    for (let d = 0; d < dst; d++) {
      let x = (d + 0.5) * scale - 0.5;
      if (x < 0) x = 0;
      let i = Math.floor(x), f = x - i;
      if (i >= src - 1) { i = src - 1; f = 0; }
      taps.push(f > 0 ? [i, 1 - f, i + 1, f] : [i, 1]);
    }
    return taps;
  }

  // RGBA (w x h) -> RGB (nw x nh) as float, separably: rows first, then columns.
  function resizeRGB(rgba, w, h, nw, nh) {
    const shrink = nw * nh < w * h;
    const xt = (shrink ? areaTaps : linearTaps)(w, nw);
    const yt = (shrink ? areaTaps : linearTaps)(h, nh);
    const rows = new Float32Array(h * nw * 3);
    for (let y = 0; y < h; y++) {
      const base = y * w * 4, out = y * nw * 3;
      for (let x = 0; x < nw; x++) {
        const t = xt[x];
        let r = 0, g = 0, b = 0;
        for (let k = 0; k < t.length; k += 2) {
          const p = base + t[k] * 4, wt = t[k + 1];
          r += rgba[p] * wt; g += rgba[p + 1] * wt; b += rgba[p + 2] * wt;
        }
        rows[out + x * 3] = r; rows[out + x * 3 + 1] = g; rows[out + x * 3 + 2] = b;
      }
    }
    const result = new Float32Array(nh * nw * 3);
    for (let y = 0; y < nh; y++) {
      const t = yt[y], out = y * nw * 3;
      for (let k = 0; k < t.length; k += 2) {
        const src = t[k] * nw * 3, wt = t[k + 1];
        for (let i = 0; i < nw * 3; i++) result[out + i] += rows[src + i] * wt;
      }
    }
    return result;
  }

  // RGBA pixels of any size -> uint8 (size, size, 3) by the model's resize rule.
  function prepare(rgba, w, h, size, rule) {
    let x0 = 0, y0 = 0;
    if (rule === "crop") {
      const side = Math.min(w, h);
      x0 = Math.floor((w - side) / 2); y0 = Math.floor((h - side) / 2);
      const cut = new Uint8ClampedArray(side * side * 4);
      for (let y = 0; y < side; y++) {
        cut.set(rgba.subarray(((y + y0) * w + x0) * 4, ((y + y0) * w + x0 + side) * 4), y * side * 4);
      }
      rgba = cut; w = side; h = side;
    }
    let nw = size, nh = size;
    if (rule === "pad") {
      const scale = size / Math.max(w, h);
      nw = Math.max(1, roundHalfEven(w * scale)); nh = Math.max(1, roundHalfEven(h * scale));
    }
    const out = new Uint8Array(size * size * 3);
    let resized;
    if (nw === w && nh === h) {
      resized = new Float32Array(w * h * 3);
      for (let i = 0, j = 0; i < w * h * 4; i += 4, j += 3) {
        resized[j] = rgba[i]; resized[j + 1] = rgba[i + 1]; resized[j + 2] = rgba[i + 2];
      }
    } else {
      resized = resizeRGB(rgba, w, h, nw, nh);
    }
    const top = Math.floor((size - nh) / 2), left = Math.floor((size - nw) / 2);
    for (let y = 0; y < nh; y++) {
      for (let i = 0; i < nw * 3; i++) {
        const v = Math.round(resized[y * nw * 3 + i]);
        out[((y + top) * size + left) * 3 + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
    return out;
  }

  // The RGBA pixels of an ImageBitmap, <img>, <video> or <canvas>, at their natural size.
  function pixelsOf(source, canvas) {
    const w = source.videoWidth || source.naturalWidth || source.width;
    const h = source.videoHeight || source.naturalHeight || source.height;
    if (!w || !h) throw new Error("The picture has no pixels yet.");
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.fillStyle = "#fff";  // transparent pixels become white, as imgcls flattens alpha
    ctx.fillRect(0, 0, w, h);
    ctx.drawImage(source, 0, 0, w, h);
    return { rgba: ctx.getImageData(0, 0, w, h).data, w, h };
  }

  async function create(model, runtime, options = {}) {
    const ort = global.ort;
    if (!ort) throw new Error("onnxruntime-web (ort.wasm.min.js) did not load.");
    if (!model || !model.meta) throw new Error("The model file (model.js) did not load.");
    ort.env.wasm.numThreads = options.threads || 1;  // threads need a cross-origin-isolated page
    if (runtime) {  // everything from script tags: nothing is fetched, so file:// works
      ort.env.wasm.wasmBinary = base64Bytes(runtime.wasm);
      const glue = new Blob([runtime.mjs], { type: "text/javascript" });
      ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(glue) };
    } else if (options.wasmPaths) {  // a served page: the runtime's files from this URL folder
      ort.env.wasm.wasmPaths = options.wasmPaths;
    }
    const bytes = model.onnx instanceof Uint8Array ? model.onnx : base64Bytes(model.onnx);
    const started = performance.now();
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"],
                                                              graphOptimizationLevel: "all" });
    return new Classifier(session, model.meta, performance.now() - started);
  }

  class Classifier {
    constructor(session, meta, loadMs) {
      this.session = session;
      this.meta = meta;
      this.classes = meta.classes;
      this.size = meta.image_spec.size;
      this.rule = meta.image_spec.resize || "squash";
      this.loadMs = loadMs;
      this.canvas = document.createElement("canvas");
    }

    input(source) {
      const { rgba, w, h } = pixelsOf(source, this.canvas);
      return prepare(rgba, w, h, this.size, this.rule);
    }

    async classify(source, topK = 5) {
      const started = performance.now();
      const pixels = this.input(source);
      const tensor = new global.ort.Tensor("uint8", pixels, [1, this.size, this.size, 3]);
      const out = await this.session.run({ [this.session.inputNames[0]]: tensor });
      const names = this.session.outputNames;
      const proba = Array.from(out[names[0]].data);
      const ranked = proba.map((p, i) => ({ label: this.classes[i], probability: p }))
                          .sort((a, b) => b.probability - a.probability).slice(0, topK);
      const answer = { predictions: ranked, probabilities: proba, ms: performance.now() - started };
      if (names.length > 1) {
        const decided = Array.from(out[names[1]].data, Number);
        answer.label = this.meta.multilabel ? this.classes.filter((_, i) => decided[i] === 1).join("|")
                                            : this.classes[decided[0]];
      } else {
        answer.label = ranked[0].label;
      }
      if (names.length > 2 && this.meta.unknown) {
        answer.unknown_score = out[names[2]].data[0];
        answer.unknown = answer.unknown_score > this.meta.unknown.threshold;
      }
      return answer;
    }
  }

  // ---- what both pages (the offline export and the served page) draw and wire the same way ----
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderBars(list, predictions) {  // top-k rows: label, a bar, the percentage
    list.replaceChildren(...predictions.map((p, i) => {
      const row = el("li", i === 0 ? "pred top" : "pred");
      const track = el("span", "track");
      const fill = el("span", "fill");
      fill.style.width = `${(p.probability * 100).toFixed(1)}%`;
      track.append(fill);
      track.setAttribute("aria-hidden", "true");
      row.append(el("span", "label", p.label), track, el("span", "pct", `${(p.probability * 100).toFixed(1)}%`));
      return row;
    }));
  }

  async function openCamera(video) {  // the back camera when there is one; throws with the reason
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("No camera access here: browsers allow it on https://, http://localhost or a file.");
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(
        { video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "environment" }, audio: false });
    } catch (err) {
      throw new Error(`Camera unavailable: ${err.message}`);
    }
    video.srcObject = stream;
    await video.play();
    return stream;
  }

  function closeCamera(stream, video) {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
  }

  function wireTabs(onSelect) {  // role=tab buttons: click or arrow keys show their panel
    const tabs = [...document.querySelectorAll("[role=tab]")];
    const select = (tab) => {
      for (const other of tabs) {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        other.tabIndex = selected ? 0 : -1;
        document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
      }
      onSelect(tab);
    };
    for (const tab of tabs) {
      tab.addEventListener("click", () => select(tab));
      tab.addEventListener("keydown", (event) => {
        if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
        const next = tabs[(tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
        select(next);
        next.focus();
      });
    }
  }

  function wireDrop(drop, input, onFiles) {  // drag and drop on a label, or its file input
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      onFiles([...event.dataTransfer.files]);
    });
    input.addEventListener("change", (event) => { onFiles([...event.target.files]); event.target.value = ""; });
  }

  global.ImgclsWeb = { create, prepare, base64Bytes,
                       ui: { el, renderBars, openCamera, closeCamera, wireTabs, wireDrop } };
})(typeof window !== "undefined" ? window : self);
