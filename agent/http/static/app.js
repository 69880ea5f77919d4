// routekit web page: plain JavaScript, no build step, nothing loaded from elsewhere.
// Data from the server is only ever put into the page with textContent (never innerHTML).
"use strict";

const TOKEN_KEY = "routekit.token";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const $ = (id) => document.getElementById(id);

const state = { token: sessionStorage.getItem(TOKEN_KEY), configs: [], providers: [], sessionId: null,
                sessionKey: null, running: false };

// ----------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function say(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = "status " + kind;
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

function detailOf(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  return `request failed (HTTP ${status})`;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    if (response.status === 401) signOut("Your token was not accepted; sign in again.");
    let detail = detailOf(data, response.status);
    if (response.status === 429) detail += ` (retry in ${response.headers.get("Retry-After") || "a few"} s)`;
    throw new ApiError(response.status, detail);
  }
  return data;
}

// ----------------------------------------------------------------- sign in and navigation

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== view;
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (view === "chat") refreshChatChoices();
  if (view === "usage") loadUsage();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  $("nav").hidden = true;
  for (const section of document.querySelectorAll(".view")) section.hidden = true;
  $("signin").hidden = false;
  say(message || "Signed out.");
}

async function signIn(token) {
  state.token = token;
  try {
    state.providers = await api("GET", "/api/providers");
  } catch (error) {
    state.token = null;
    say(error.status === 401 ? "That token was not accepted." : error.message, "error");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true;
  $("nav").hidden = false;
  fillProviders();
  await loadConfigs();
  show("keys");
  say("Signed in.", "ok");
}

// ----------------------------------------------------------------- provider keys

function fillProviders() {
  const select = $("cfg-provider");
  select.replaceChildren(...state.providers.map((p) => el("option", { value: p.name }, `${p.display_name} (${p.name})`)));
}

async function loadConfigs() {
  state.configs = await api("GET", "/api/user/llm-config");
  const list = $("config-list");
  list.replaceChildren(...state.configs.map(configCard));
  $("no-configs").hidden = state.configs.length > 0;
}

function configCard(config) {
  const name = config.label || config.provider;
  const result = el("p", { class: "check-result", role: "status", "aria-live": "polite" });
  const status = config.status === "ok" ? null : el("span", { class: "badge bad" }, "needs reconfiguration");
  const item = el("li", { class: "card", "data-config": config.id },
    el("div", { class: "meta" },
      el("strong", {}, name, config.is_default ? el("span", { class: "badge ok" }, "default") : null, status),
      el("span", { class: "help" }, `${config.provider} · key ${config.api_key_masked || "none"}` +
        (config.default_model ? ` · ${config.default_model}` : ""))),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "small", "aria-label": `Test ${name}`, onclick: () => testConfig(config, result) }, "Test"),
      config.is_default ? null : el("button", { type: "button", class: "small", "aria-label": `Make ${name} the default`,
        onclick: () => makeDefault(config) }, "Make default"),
      el("button", { type: "button", class: "danger", "aria-label": `Delete ${name}`, onclick: () => deleteConfig(config) }, "Delete")),
    result);
  return item;
}

async function testConfig(config, result) {
  result.textContent = "Testing…";
  result.className = "check-result";
  try {
    const check = await api("POST", `/api/user/llm-config/${config.id}/test`);
    result.textContent = (check.ok ? "Key works: " : "Key does not work: ") + check.detail;
    result.className = "check-result " + (check.ok ? "ok" : "bad");
  } catch (error) {
    result.textContent = error.message;
    result.className = "check-result bad";
  }
}

async function makeDefault(config) {
  try {
    await api("PUT", `/api/user/llm-config/${config.id}`, { default: true });
    await loadConfigs();
    say(`${config.label || config.provider} is now the default.`, "ok");
  } catch (error) { say(error.message, "error"); }
}

async function deleteConfig(config) {
  if (!window.confirm(`Delete the key "${config.label || config.provider}"?`)) return;
  try {
    await api("DELETE", `/api/user/llm-config/${config.id}`);
    await loadConfigs();
    say("Key deleted.", "ok");
  } catch (error) { say(error.message, "error"); }
}

async function addConfig(event) {
  event.preventDefault();
  const form = event.target;
  const body = { provider: $("cfg-provider").value, default: $("cfg-default").checked };
  for (const [field, id] of [["api_key", "cfg-key"], ["label", "cfg-label"], ["base_url", "cfg-base"], ["default_model", "cfg-model"]]) {
    const value = $(id).value.trim();
    if (value) body[field] = value;
  }
  try {
    await api("POST", "/api/user/llm-config", body);
    form.reset();  // the key leaves the page as soon as it is stored
    $("cfg-provider").value = body.provider;
    await loadConfigs();
    say("Key added.", "ok");
  } catch (error) {
    $("cfg-key").value = "";
    say(error.message, "error");
  }
}

// ----------------------------------------------------------------- chat

async function refreshChatChoices() {
  const select = $("chat-config");
  const previous = select.value;
  select.replaceChildren(...state.configs.map((c) =>
    el("option", { value: c.id }, `${c.label || c.provider} (${c.provider})${c.is_default ? " · default" : ""}`)));
  if (previous && state.configs.some((c) => c.id === previous)) select.value = previous;
  else {
    const preferred = state.configs.find((c) => c.is_default);
    if (preferred) select.value = preferred.id;
  }
  await loadModels();
  try {
    const servers = await api("GET", "/api/user/mcp-servers");
    const checked = new Set([...document.querySelectorAll("#chat-tool-list input:checked")].map((i) => i.value));
    $("chat-tool-list").replaceChildren(...servers.map((s) => el("label", { class: "check" },
      el("input", { type: "checkbox", value: s.name, checked: checked.has(s.name) ? "checked" : null }),
      `${s.name}${s.scope === "catalog" ? " (catalogue)" : ""}`)));
    $("chat-tools").hidden = servers.length === 0;
  } catch (error) { say(error.message, "error"); }
}

async function loadModels() {
  const config = state.configs.find((c) => c.id === $("chat-config").value);
  const select = $("chat-model");
  if (!config) { select.replaceChildren(); return; }
  let models = [];
  try {
    models = (await api("GET", `/api/providers/${encodeURIComponent(config.provider)}/models?config_id=${config.id}`)).map((m) => m.id);
  } catch (error) { say(`Could not list models: ${error.message}`, "error"); }
  if (config.default_model && !models.includes(config.default_model)) models.unshift(config.default_model);
  select.replaceChildren(...models.map((m) => el("option", { value: m }, m)));
  if (config.default_model) select.value = config.default_model;
}

function chatKey() {
  const servers = [...document.querySelectorAll("#chat-tool-list input:checked")].map((i) => i.value);
  return { config: $("chat-config").value, model: $("chat-model").value, servers };
}

function newChat() {
  state.sessionId = null;
  state.sessionKey = null;
  $("transcript").replaceChildren();
  say("New chat.", "ok");
}

async function ensureSession() {
  const key = chatKey();
  if (state.sessionId && JSON.stringify(key) === state.sessionKey) return state.sessionId;
  const created = await api("POST", "/api/sessions", {
    provider_config_id: key.config || null, model: key.model || null, mcp_servers: key.servers,
  });
  state.sessionId = created.id;
  state.sessionKey = JSON.stringify(key);
  return created.id;
}

function addMessage(role, text) {
  const node = el("div", { class: `msg ${role}` }, text);
  $("transcript").append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

async function sendMessage(event) {
  event.preventDefault();
  if (state.running) return;
  const input = $("chat-input");
  const content = input.value.trim();
  if (!content) return;
  if (!state.configs.length) { say("Add a provider key first.", "error"); return; }
  state.running = true;
  $("send").disabled = true;
  try {
    const sessionId = await ensureSession();
    input.value = "";
    addMessage("user", content);
    await streamRun(sessionId, content);
  } catch (error) {
    addMessage("error", error.message);
  } finally {
    state.running = false;
    $("send").disabled = false;
  }
}

async function streamRun(sessionId, content) {
  const response = await fetch(`/api/sessions/${sessionId}/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ content }),
  });
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    throw new ApiError(response.status, detailOf(data, response.status));
  }
  const run = { answer: null, tools: new Map(), sessionId };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let kind = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(run, kind, JSON.parse(data));
    }
  }
}

function toolCard(run, callId, name, args) {
  let card = run.tools.get(callId);
  if (!card) {
    card = el("div", { class: "tool", "data-call": callId },
      el("strong", {}, `Tool ${name}`), el("pre", {}, JSON.stringify(args, null, 2)),
      el("p", { class: "tool-state", role: "status" }, "Waiting…"));
    run.tools.set(callId, card);
    $("transcript").append(card);
    run.answer = null;  // text after a tool call starts a new bubble
  }
  return card;
}

function onEvent(run, kind, data) {
  if (kind === "text") {
    if (!run.answer) run.answer = addMessage("assistant", "");
    run.answer.textContent += data.text;
    run.answer.scrollIntoView({ block: "end" });
  } else if (kind === "approval_requested") {
    const card = toolCard(run, data.call_id, data.name, data.arguments);
    card.querySelector(".tool-state").textContent = `Needs your approval: ${data.reason}`;
    const decide = async (approve) => {
      for (const b of box.querySelectorAll("button")) b.disabled = true;
      try {
        await api("POST", `/api/sessions/${run.sessionId}/approvals/${encodeURIComponent(data.call_id)}`, { approve });
        card.querySelector(".tool-state").textContent = approve ? "Approved." : "Denied.";
      } catch (error) { card.querySelector(".tool-state").textContent = error.message; }
      box.remove();
    };
    const box = el("div", { class: "approval", role: "group", "aria-label": `Approve ${data.name}?` },
      el("button", { type: "button", onclick: () => decide(true) }, "Approve"),
      el("button", { type: "button", class: "danger", onclick: () => decide(false) }, "Deny"));
    card.append(box);
    box.querySelector("button").focus();
  } else if (kind === "tool_started") {
    toolCard(run, data.call_id, data.name, data.arguments).querySelector(".tool-state").textContent = "Running…";
  } else if (kind === "tool_progress") {
    const total = data.total ? ` of ${data.total}` : "";
    toolCard(run, data.call_id, data.name, {}).querySelector(".tool-state").textContent =
      `Progress ${data.progress}${total}${data.message ? `: ${data.message}` : ""}`;
  } else if (kind === "tool_finished") {
    const card = toolCard(run, data.call_id, data.name, data.arguments);
    card.classList.add(data.is_error ? "failed" : "done");
    card.querySelector(".tool-state").textContent = data.executed
      ? `${data.is_error ? "Failed" : "Done"} in ${data.duration.toFixed(2)} s` : "Not run";
    card.append(el("pre", { class: "tool-result" }, data.result_text));
  } else if (kind === "retry") {
    say(`${data.provider} failed (${data.error}); retrying in ${data.delay.toFixed(1)} s…`);
  } else if (kind === "fallback") {
    say(`Switched from ${data.from_provider} to ${data.to_provider}: ${data.reason}`);
  } else if (kind === "error") {
    addMessage("error", `${data.kind}: ${data.error}`);
  } else if (kind === "final") {
    const result = data.result;
    const cost = result.cost_usd === null ? "cost unknown" : `$${result.cost_usd.toFixed(6)}`;
    const usage = result.usage;
    say(`Done (${result.stop_reason}) · ${usage.input_tokens ?? "?"} in / ${usage.output_tokens ?? "?"} out tokens · ${cost}`, "ok");
    if (result.detail) addMessage("error", result.detail);
  }
}

// ----------------------------------------------------------------- usage

async function loadUsage() {
  const params = new URLSearchParams([["by", "day"], ["by", "provider"]]);
  const since = $("usage-since").value;
  if (since) params.set("since", since);
  let report;
  try { report = await api("GET", `/api/usage?${params}`); } catch (error) { say(error.message, "error"); return; }
  const rows = report.groups;
  const tbody = $("usage-table").querySelector("tbody");
  tbody.replaceChildren(...rows.map((r) => el("tr", {},
    el("td", {}, r.group.day), el("td", {}, r.group.provider), el("td", { class: "num" }, r.calls),
    el("td", { class: "num" }, formatTokens(r, "input_tokens")), el("td", { class: "num" }, formatTokens(r, "output_tokens")),
    el("td", { class: "num" }, formatCost(r)))));
  const total = report.total;
  $("usage-calls").textContent = total ? total.calls : 0;
  $("usage-in").textContent = total ? formatTokens(total, "input_tokens") : 0;
  $("usage-out").textContent = total ? formatTokens(total, "output_tokens") : 0;
  $("usage-cost").textContent = total ? formatCost(total) : "0";
  drawChart(rows);
}

// Unknown stays unknown: a sum some call did not report is null; show the known part as a lower bound.
function formatTokens(row, field) {
  if (row[field] !== null) return row[field];
  if (row.tokens_unknown >= row.calls) return "unknown";
  return `≥ ${row.known[field]}`;
}

function formatCost(row) {
  // No call priced -> "unknown"; some priced -> a lower bound.
  if (row.cost_usd !== null) return Number(row.cost_usd).toFixed(6);
  if (row.cost_unknown >= row.calls) return "unknown";
  return `≥ ${Number(row.known.cost_usd).toFixed(6)} (${row.cost_unknown} unpriced)`;
}

// A stacked bar per day, one colour per provider; the table above is the accessible equivalent.
function drawChart(rows) {
  const NS = "http://www.w3.org/2000/svg";
  const days = [...new Set(rows.map((r) => r.group.day))].sort();
  const providers = [...new Set(rows.map((r) => r.group.provider))].sort();
  const useCost = rows.some((r) => Number(r.known.cost_usd) > 0);
  // Bars show what is known (lower bounds where some calls are unknown; the table says which).
  const value = (r) => (useCost ? Number(r.known.cost_usd) : r.known.input_tokens + r.known.output_tokens);
  $("usage-caption").textContent = useCost ? "Cost (USD) by day and provider" : "Tokens by day and provider";
  const width = 640, height = 260, left = 64, bottom = 36, top = 12;
  const totals = days.map((d) => rows.filter((r) => r.group.day === d).reduce((s, r) => s + value(r), 0));
  const max = Math.max(...totals, 0) || 1;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", "usage-caption");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const plotH = height - top - bottom;
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    add("line", { x1: left, x2: width - 8, y1: y, y2: y });
    add("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, formatAxis((max * i) / 4, useCost));
  }
  if (!days.length) add("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No usage yet");
  const slot = (width - left - 8) / Math.max(days.length, 1);
  const barW = Math.min(48, slot * 0.7);
  days.forEach((day, i) => {
    let y = top + plotH;
    const x = left + i * slot + (slot - barW) / 2;
    providers.forEach((provider, p) => {
      const row = rows.find((r) => r.group.day === day && r.group.provider === provider);
      if (!row) return;
      const h = (value(row) / max) * plotH;
      y -= h;
      const rect = add("rect", { x, y, width: barW, height: Math.max(h, 0.5), fill: COLORS[p % COLORS.length],
                                 "data-provider": provider, "data-day": day });
      const tip = document.createElementNS(NS, "title");
      tip.textContent = `${day} · ${provider}: ${useCost ? "$" + value(row).toFixed(6) : value(row) + " tokens"}`;
      rect.append(tip);
    });
    add("text", { x: x + barW / 2, y: height - bottom + 16, "text-anchor": "middle" }, day.slice(5));
  });
  $("usage-chart").replaceChildren(svg);
  $("usage-legend").replaceChildren(...providers.map((provider, p) => el("li", {},
    el("span", { class: "swatch", "data-color": COLORS[p % COLORS.length] }), provider)));
  for (const swatch of document.querySelectorAll("#usage-legend .swatch")) swatch.style.background = swatch.dataset.color;
}

function formatAxis(v, cost) {
  if (cost) return v >= 1 ? `$${v.toFixed(2)}` : `$${v.toPrecision(2)}`;
  return v >= 1000 ? `${(v / 1000).toFixed(1)}k` : String(Math.round(v));
}

// ----------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (token) signIn(token);
  });
  $("sign-out").addEventListener("click", () => signOut());
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => show(tab.dataset.view));
  $("add-config").addEventListener("submit", addConfig);
  $("chat-config").addEventListener("change", loadModels);
  $("new-chat").addEventListener("click", newChat);
  $("chat-form").addEventListener("submit", sendMessage);
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("chat-form").requestSubmit(); }
  });
  $("usage-refresh").addEventListener("click", loadUsage);
  $("usage-since").addEventListener("change", loadUsage);
  if (state.token) signIn(state.token);
});
