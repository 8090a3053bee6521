// The web page of `pixelrefer serve`: mark regions on an image or a video frame, ask, read the streamed answer.
"use strict";

const COLOURS = ["#ff0000", "#00a0ff", "#00c800", "#ffa000", "#c800ff", "#00dcc8"];
const BRUSH_RADIUS = 12;
const page = {
  kind: null, url: null, width: 0, height: 0, regions: [], drag: null, brush: null, segmenter: false,
};
const $ = (id) => document.getElementById(id);
const stage = $("stage"), marks = $("marks"), ctx = marks.getContext("2d");

fetch("/health").then((r) => r.json()).then((health) => {
  page.segmenter = Boolean(health.segmenter);
  $("segmenter-note").textContent = page.segmenter
    ? "Points and boxes are turned into object masks by the server's segmenter."
    : "No segmenter on this server: a point asks about the square around it, a box about the box.";
});

$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => show(file.type.startsWith("video/") ? "video" : "image", reader.result);
  reader.readAsDataURL(file);
});

function show(kind, url) {
  for (const old of stage.querySelectorAll("img, video")) old.remove();
  const media = document.createElement(kind === "video" ? "video" : "img");
  if (kind === "video") { media.controls = false; media.muted = true; }
  media.addEventListener(kind === "video" ? "loadedmetadata" : "load", () => {
    page.width = kind === "video" ? media.videoWidth : media.naturalWidth;
    page.height = kind === "video" ? media.videoHeight : media.naturalHeight;
    marks.width = page.width;
    marks.height = page.height;
    page.regions = [];
    redraw();
    stage.dataset.ready = "true";
  });
  media.src = url;
  stage.insertBefore(media, marks);
  page.kind = kind;
  page.url = url;
  page.media = media;
  if (kind === "video") addVideoControls(media);
}

function addVideoControls(video) {
  const slider = document.createElement("input");
  slider.type = "range"; slider.min = 0; slider.step = "any"; slider.value = 0; slider.id = "time";
  video.addEventListener("loadedmetadata", () => { slider.max = video.duration; });
  slider.addEventListener("input", () => { video.currentTime = Number(slider.value); });
  $("time")?.remove();
  stage.after(slider);
}

function pixel(event) {
  const box = marks.getBoundingClientRect();
  const x = (event.clientX - box.left) * page.width / box.width;
  const y = (event.clientY - box.top) * page.height / box.height;
  return [Math.min(Math.max(x, 0), page.width - 1), Math.min(Math.max(y, 0), page.height - 1)];
}

const tool = () => document.querySelector("input[name=tool]:checked").value;

marks.addEventListener("mousedown", (event) => {
  if (!page.kind) return;
  const [x, y] = pixel(event);
  if (tool() === "box") page.drag = [x, y, x, y];
  if (tool() === "brush") {
    const canvas = document.createElement("canvas");
    canvas.width = page.width; canvas.height = page.height;
    page.brush = canvas;
    paint(x, y);
  }
});

marks.addEventListener("mousemove", (event) => {
  const [x, y] = pixel(event);
  if (page.drag) { page.drag[2] = x; page.drag[3] = y; redraw(); }
  if (page.brush) paint(x, y);
});

marks.addEventListener("mouseup", (event) => {
  if (!page.kind) return;
  const [x, y] = pixel(event);
  if (tool() === "point") addRegion({ point: [Math.round(x), Math.round(y)] });
  if (page.drag) {
    const [x0, y0] = page.drag;
    page.drag = null;
    const box = [Math.floor(Math.min(x0, x)), Math.floor(Math.min(y0, y)),
      Math.ceil(Math.max(x0, x)) + 1, Math.ceil(Math.max(y0, y)) + 1];
    addRegion({ box: box.map((v, i) => Math.min(v, i % 2 ? page.height : page.width)) });
  }
  if (page.brush) {
    addRegion({ mask: page.brush.toDataURL("image/png") }, page.brush);
    page.brush = null;
  }
});

function paint(x, y) {
  const brush = page.brush.getContext("2d");
  brush.fillStyle = "#ffffff";
  brush.beginPath();
  brush.arc(x, y, BRUSH_RADIUS, 0, 2 * Math.PI);
  brush.fill();
  redraw();
}

function addRegion(region, brush = null) {
  if (page.kind === "video") region.time = page.media.currentTime;
  page.regions.push({ region, brush });
  redraw();
}

$("clear").addEventListener("click", () => { page.regions = []; redraw(); });

function redraw() {
  ctx.clearRect(0, 0, marks.width, marks.height);
  const drawn = page.regions.map((entry) => entry);
  if (page.brush) drawn.push({ region: {}, brush: page.brush });
  drawn.forEach((entry, index) => drawRegion(entry, COLOURS[index % COLOURS.length], String(index + 1)));
  if (page.drag) {
    const [x0, y0, x1, y1] = page.drag;
    ctx.strokeStyle = COLOURS[page.regions.length % COLOURS.length];
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  $("regions").innerHTML = page.regions
    .map((_, i) => `<span style="background:${COLOURS[i % COLOURS.length]}">&lt;region${i + 1}&gt;</span>`)
    .join("");
}

function drawRegion({ region, brush }, colour, label) {
  ctx.lineWidth = Math.max(2, page.width / 200);
  ctx.strokeStyle = ctx.fillStyle = colour;
  let anchor = [4, 4];
  if (region.point) {
    const [x, y] = region.point;
    ctx.strokeRect(x - 14, y - 14, 28, 28);
    anchor = [x + 16, y];
  } else if (region.box) {
    const [x0, y0, x1, y1] = region.box;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    anchor = [x0 + 3, y0 + 14];
  }
  if (brush) {
    const tinted = document.createElement("canvas");
    tinted.width = page.width; tinted.height = page.height;
    const t = tinted.getContext("2d");
    t.drawImage(brush, 0, 0);
    t.globalCompositeOperation = "source-in";
    t.fillStyle = colour;
    t.fillRect(0, 0, page.width, page.height);
    ctx.globalAlpha = 0.45;
    ctx.drawImage(tinted, 0, 0);
    ctx.globalAlpha = 1;
  }
  if (region.point || region.box || brush) {
    ctx.font = `bold ${Math.max(14, page.width / 30)}px sans-serif`;
    ctx.fillText(label, anchor[0], anchor[1]);
  }
}

// The request of the question: <regionN> placeholders become <region>, their regions listed in the same order.
function buildRequest(question, maxTokens) {
  const regions = [];
  let error = null;
  const text = question.replace(/<region(\d+)>/g, (_, number) => {
    const entry = page.regions[Number(number) - 1];
    if (!entry) error = `<region${number}> is not marked (${page.regions.length} region(s) marked)`;
    else regions.push(entry.region);
    return "<region>";
  });
  if (error) throw new Error(error);
  const media = page.kind === "video"
    ? { type: "video_url", video_url: { url: page.url } }
    : { type: "image_url", image_url: { url: page.url } };
  return {
    messages: [{ role: "user", content: [media, { type: "text", text }] }],
    regions, stream: true, max_tokens: maxTokens,
  };
}

$("ask").addEventListener("click", async () => {
  const answer = $("answer");
  answer.textContent = "";
  answer.dataset.state = "streaming";
  try {
    if (!page.kind) throw new Error("upload an image or a video first");
    const body = buildRequest($("question").value, Number($("max-tokens").value));
    $("request").textContent = JSON.stringify({ ...body, stream: false });
    $("overlay").src = overlaySnapshot();
    $("overlay").hidden = false;
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error((await response.json()).error.message);
    await readEvents(response, (delta) => { answer.textContent += delta; });
    answer.dataset.state = "done";
  } catch (error) {
    answer.textContent = String(error.message || error);
    answer.dataset.state = "error";
  }
});

function overlaySnapshot() {
  const canvas = document.createElement("canvas");
  canvas.width = page.width; canvas.height = page.height;
  const c = canvas.getContext("2d");
  c.drawImage(page.media, 0, 0, page.width, page.height);
  c.drawImage(marks, 0, 0);
  return canvas.toDataURL("image/png");
}

// Server-sent events: each `data:` line is a chat.completion.chunk, an {"error": ...} object, or [DONE].
async function readEvents(response, onDelta) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 2);
      if (!line.startsWith("data: ")) continue;
      const data = line.slice(6);
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices[0]?.delta?.content;
      if (delta) onDelta(delta);
    }
  }
}
