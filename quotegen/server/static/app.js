// The playground: settings from /info, samples streamed token by token from the native API
// (POST /v1/generate/stream, server-sent events), a copy button on each, errors inline.
// Plain JavaScript, no framework, nothing from the network but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_SAMPLES = 8;
let controller = null; // the running generation's AbortController
let filled = false; // the controls got the model's defaults once

function headers() {
  const result = { "Content-Type": "application/json", Accept: "application/json" };
  const key = $("key").value.trim();
  if (key) result.Authorization = "Bearer " + key;
  return result;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) {
    // not JSON: fall through to the status line
  }
  return `HTTP ${response.status} ${response.statusText}`.trim();
}

function needKey(message) {
  $("key-field").hidden = false;
  $("details").textContent = " — this server needs an API key";
  if (message && $("key").value) showError(message);
}

// Model name, device and the model's own defaults, from /info.
async function loadInfo() {
  let response;
  try {
    response = await fetch("/info", { headers: headers() });
  } catch (error) {
    showError("The server cannot be reached: " + error.message);
    return;
  }
  if (response.status === 401) {
    needKey(await errorMessage(response));
    return;
  }
  if (response.status === 503) {
    $("details").textContent = " is loading…";
    setTimeout(loadInfo, 1000);
    return;
  }
  if (!response.ok) {
    showError(await errorMessage(response));
    return;
  }
  showError("");
  const info = await response.json();
  const precision = info.quantize && info.quantize !== "none" ? info.quantize : info.dtype;
  $("model").textContent = info.model;
  $("details").textContent =
    ` on ${info.device} (${precision}), context ${info.limits.context_length} tokens, v${info.version}`;
  $("max_new_tokens").max = info.limits.max_new_tokens;
  $("n").max = Math.min(MAX_SAMPLES, info.limits.max_samples);
  if (!filled) {
    filled = true;
    $("temperature").value = info.defaults.temperature;
    $("top_p").value = info.defaults.top_p;
    $("max_new_tokens").value = info.defaults.max_new_tokens;
    showValues();
  }
}

function showValues() {
  $("temperature-value").textContent = Number($("temperature").value).toFixed(2);
  $("top_p-value").textContent = Number($("top_p").value).toFixed(2);
}

function newCard() {
  const card = $("result-template").content.firstElementChild.cloneNode(true);
  card.dataset.state = "waiting";
  card.dataset.chunks = "0";
  $("results").append(card);
  return card;
}

function fail(card, message) {
  card.dataset.state = "error";
  card.querySelector(".info").textContent = "failed";
  if ($("error").hidden) showError(message);
}

function finish(card, result) {
  const text = card.querySelector(".text");
  text.textContent = result.text;
  card.dataset.state = "done";
  card.querySelector(".info").textContent =
    `${result.completion_tokens} tokens · ${result.seconds.toFixed(2)} s · seed ${result.seed}` +
    (result.finish_reason === "length" ? " · hit max tokens" : "");
  const button = card.querySelector(".copy");
  button.disabled = false;
  button.addEventListener("click", () => copy(result.text, button));
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // No clipboard API (a page served over plain HTTP to another host): the old way.
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
  setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
}

// One server-sent event block ("event: x\ndata: {...}") as {name, data}.
function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trim());
  }
  return { name, data: data.length ? JSON.parse(data.join("\n")) : null };
}

async function stream(prompt, settings, card, signal) {
  const text = card.querySelector(".text");
  let response;
  try {
    response = await fetch("/v1/generate/stream", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ prompt, settings }),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") card.dataset.state = "stopped";
    else fail(card, "The server cannot be reached: " + error.message);
    return;
  }
  if (!response.ok) {
    const message = await errorMessage(response);
    if (response.status === 401) needKey();
    fail(card, message);
    return;
  }
  card.dataset.state = "streaming";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event.name === "prompt") {
          text.textContent = event.data.prompt;
        } else if (event.name === "token") {
          text.textContent += event.data.text;
          card.dataset.chunks = String(Number(card.dataset.chunks) + 1);
        } else if (event.name === "result") {
          finish(card, event.data);
        } else if (event.name === "error") {
          fail(card, event.data.error.message);
        }
      }
    }
  } catch (error) {
    if (error.name === "AbortError") card.dataset.state = "stopped";
    else fail(card, error.message);
  }
}

function busy(running) {
  $("generate").disabled = running;
  $("stop").disabled = !running;
  document.body.dataset.busy = running ? "true" : "false";
}

async function generate(event) {
  event.preventDefault();
  if (controller) return;
  showError("");
  const n = Math.max(1, Math.min(Number($("n").value) || 1, Number($("n").max) || MAX_SAMPLES));
  const seedText = $("seed").value.trim();
  // Sample k gets seed base + k, as the API's n does: a seed given here redoes all of them.
  const base = seedText === "" ? Math.floor(Math.random() * 2 ** 31) : Number(seedText);
  const settings = {
    temperature: Number($("temperature").value),
    top_p: Number($("top_p").value),
    max_new_tokens: Number($("max_new_tokens").value),
  };
  // A topic: each sample is a quote about it, started by the prompt if there is one.
  const about = $("about").value.trim();
  if (about !== "") settings.about = about;
  $("results").replaceChildren();
  controller = new AbortController();
  busy(true);
  const cards = Array.from({ length: n }, newCard);
  const runs = cards.map((card, k) =>
    stream($("prompt").value, { ...settings, seed: base + k }, card, controller.signal));
  await Promise.allSettled(runs);
  controller = null;
  busy(false);
}

$("form").addEventListener("submit", generate);
$("stop").addEventListener("click", () => controller && controller.abort());
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("form").requestSubmit();
});
$("temperature").addEventListener("input", showValues);
$("top_p").addEventListener("input", showValues);
$("key").addEventListener("change", loadInfo);
busy(false);
showValues();
loadInfo();
