// The aigw operator dashboard: vanilla JS, no build step, no dependencies but ./chart.js.
//
// Auth: the admin token is asked for once, kept in sessionStorage (this tab only) and sent as
// `Authorization: Bearer` on every fetch. Every number comes from the admin API and is shown
// as the API gives it: money is the API's exact decimal `*_usd` string; totals over several
// series are added exactly (decimal strings, BigInt).
//
// Pages (hash routes): #/ home, #/providers, #/providers/<name>, #/usage?…, #/budgets,
// #/performance?…, #/tools, #/requests?…, #/requests/<request id>.
// When a page has loaded, <body data-ready="<page>"> says so (the browser tests wait on it).

import { color, sparkline, stackedBars } from "./chart.js";

const TOKEN_KEY = "aigw.adminToken";
const GATEWAY_KEY = "aigw.gatewayUrl";
const DAY_MS = 86_400_000;
const view = document.getElementById("view");

// --------------------------------------------------------------------------- DOM

/** h("a", {href, class, on: {click}}, children…): elements without markup strings. */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "class") e.className = v;
    else if (k === "value") e.value = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const card = (attrs, ...children) => h("section", { class: "card", ...attrs }, ...children);

function table(head, rows, { id, foot, empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty", id }, empty);
  const th = head.map((c) => (typeof c === "string" ? h("th", {}, c) : h("th", { class: c.num ? "num" : "" }, c.label)));
  return h("div", { class: "table-wrap" },
    h("table", { id },
      h("thead", {}, h("tr", {}, th)),
      h("tbody", {}, rows),
      foot ? h("tfoot", {}, foot) : null));
}

const num = (v, attrs = {}) => h("td", { class: "num", ...attrs }, v);

function badge(text, kind) {
  return h("span", { class: `badge ${kind}` }, text);
}

function statusBadge(p) {
  return p.enabled ? badge("enabled", "ok") : badge("disabled", "off");
}

function errorBox(e) {
  return h("div", { class: "alert", role: "alert" }, String(e && e.message ? e.message : e));
}

// --------------------------------------------------------------------------- numbers

const fmtInt = (n) => (n === null || n === undefined ? "—" : BigInt(n).toLocaleString("en-US"));
const money = (usd) => (usd === null || usd === undefined ? "—" : `$${usd}`);

/** "12.5" USD → nano-USD as a BigInt, exactly. */
function toNano(usd) {
  const [whole, frac = ""] = String(usd).split(".");
  return BigInt(whole || "0") * 1_000_000_000n + BigInt((frac + "000000000").slice(0, 9));
}

/** nano-USD → the API's decimal form: at least two decimals, no trailing zeros beyond. */
function fromNano(n) {
  const whole = n / 1_000_000_000n;
  const digits = (n % 1_000_000_000n).toString().padStart(9, "0");
  const trimmed = digits.replace(/0+$/, "");
  return `${whole}.${trimmed.length < 2 ? digits.slice(0, 2) : trimmed}`;
}

const sumUsd = (list) => fromNano(list.filter((x) => x != null).reduce((s, x) => s + toNano(x), 0n));
const sumInt = (list) => list.reduce((s, x) => s + BigInt(x || 0), 0n);

/** A short axis label for a nano-USD amount (ticks only; exact values are in the tooltips). */
function usdTick(nano) {
  const v = nano / 1e9;
  if (v === 0) return "$0";
  if (v >= 1000) return `$${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  if (v >= 1) return `$${v.toFixed(v >= 100 ? 0 : 2)}`;
  return `$${Number(v.toPrecision(2))}`;
}

function intTick(v) {
  if (v >= 1e9) return `${Number((v / 1e9).toPrecision(3))}B`;
  if (v >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (v >= 1e3) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

// --------------------------------------------------------------------------- time (UTC)

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const todayStart = () => Math.floor(Date.now() / DAY_MS) * DAY_MS;
const parseDay = (s) => (/^\d{4}-\d{2}-\d{2}$/.test(s || "") ? Date.parse(`${s}T00:00:00Z`) : NaN);

function fmtTime(iso) {
  return iso ? iso.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC") : "—";
}

/** Axis labels: `MM-DD` for days; for hours `HH:00`, with the date where a day starts. */
function bucketLabel(iso, granularity, multiDay) {
  if (granularity !== "hour") return iso.slice(5, 10);
  return multiDay ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
}

function relative(iso) {
  const d = Date.parse(iso) - Date.now();
  const a = Math.abs(d);
  const text = a < 3_600_000 ? `${Math.round(a / 60_000)} min` : a < 2 * DAY_MS ? `${Math.round(a / 3_600_000)} h` : `${Math.round(a / DAY_MS)} days`;
  return d >= 0 ? `in ${text}` : `${text} ago`;
}

// --------------------------------------------------------------------------- API

class SignedOut extends Error {}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

async function request(path, { method = "GET" } = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new SignedOut();
  const r = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    cache: "no-store",
  });
  if (r.status === 401) {
    signOut("The admin token was not accepted; sign in again.");
    throw new SignedOut();
  }
  if (!r.ok) {
    let message = `HTTP ${r.status}`;
    try {
      message = (await r.json()).error.message || message;
    } catch { /* not the error shape */ }
    throw new Error(`${path.split("?")[0]}: ${message}`);
  }
  return r;
}

const api = async (path, opts) => (await request(path, opts)).json();

let configCache = null;
/** GET /api/v1/providers, kept for 10 s (it only changes with secrets). */
async function providersConfig() {
  if (configCache && Date.now() - configCache.at < 10_000) return configCache.data;
  const data = await api("/api/v1/providers");
  configCache = { at: Date.now(), data };
  return data;
}

function series(params) {
  return api(`/api/v1/usage/series?${query(params)}`);
}

// --------------------------------------------------------------------------- sign-in

function showLogin(message) {
  document.getElementById("top").hidden = true;
  view.replaceChildren();
  const login = document.getElementById("login");
  login.hidden = false;
  const err = document.getElementById("login-error");
  err.hidden = !message;
  err.textContent = message || "";
  document.getElementById("token").focus();
  document.body.dataset.ready = "login";
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  configCache = null;
  showLogin(message);
}

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("token");
  const token = input.value.trim();
  const err = document.getElementById("login-error");
  const button = document.getElementById("login-submit");
  button.disabled = true;
  try {
    const r = await fetch("/api/v1/providers", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    if (r.ok) {
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = "";
      document.getElementById("login").hidden = true;
      render();
      return;
    }
    let message = `HTTP ${r.status}`;
    try {
      message = (await r.json()).error.message || message;
    } catch { /* not JSON */ }
    err.textContent = r.status === 401 ? "That is not the admin token." : message;
    err.hidden = false;
    document.body.dataset.ready = "login-refused";
  } catch (e) {
    err.textContent = `The admin API did not answer: ${e.message}`;
    err.hidden = false;
  } finally {
    button.disabled = false;
  }
});

document.getElementById("signout").addEventListener("click", () => signOut());

// --------------------------------------------------------------------------- routing

function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(qs || "") };
}

let renderSeq = 0;

async function render() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  document.getElementById("login").hidden = true;
  document.getElementById("top").hidden = false;
  const { parts, params } = route();
  const hash = location.hash;
  const page = parts[0] || "home";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.nav === page);
  const seq = ++renderSeq;
  document.body.dataset.ready = "";
  delete document.body.dataset.route;
  view.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  const pages = {
    home: () => homePage(),
    providers: () => (parts[1] ? providerPage(parts[1]) : providersPage()),
    usage: () => usagePage(params),
    budgets: () => budgetsPage(),
    tools: () => toolsPage(),
    requests: () => (parts[1] ? requestPage(parts[1]) : requestsPage(params)),
    performance: () => performancePage(params),
  };
  const name = (page === "providers" || page === "requests") && parts[1] ? page.slice(0, -1) : page;
  try {
    if (!pages[page]) throw new Error(`No page at #/${parts.join("/")}`);
    const node = await pages[page]();
    if (seq !== renderSeq) return;
    view.replaceChildren(node);
    window.scrollTo(0, 0);
    document.body.dataset.route = hash;
    document.body.dataset.ready = name;
  } catch (e) {
    if (e instanceof SignedOut || seq !== renderSeq) return;
    view.replaceChildren(errorBox(e));
    document.body.dataset.route = hash;
    document.body.dataset.ready = "error";
  }
}

window.addEventListener("hashchange", render);

function pageHead(title, subtitle, ...actions) {
  return h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, title), subtitle ? h("p", { class: "muted" }, subtitle) : null),
    actions.length ? h("div", {}, actions) : null);
}

function stat(id, title, value, sub, spark) {
  return card({ class: "card stat", id },
    h("h3", {}, title),
    h("div", { class: "value" }, value),
    spark || null,
    sub ? h("div", { class: "sub" }, sub) : null);
}

// --------------------------------------------------------------------------- home

function attentionItems(cfg, budgets) {
  const items = [];
  for (const b of budgets.budgets) {
    const warn = b.warn_at_percent ?? 80;
    const reserved = b.reserved_nanousd > 0 ? ` (+ ${money(b.reserved_usd)} reserved)` : "";
    if (b.used_percent >= 100) {
      items.push({ kind: "bad", label: "over cap", href: "#/budgets",
        text: `Agent ${b.agent} has spent ${money(b.spent_usd)}${reserved} of its ${money(b.cap_usd)} ${b.window} budget (${b.used_percent}%): its requests are refused until ${fmtTime(b.resets_at)}` });
    } else if (b.used_percent >= warn) {
      items.push({ kind: "warn", label: "near cap", href: "#/budgets",
        text: `Agent ${b.agent} is at ${b.used_percent}% of its ${money(b.cap_usd)} ${b.window} budget: ${money(b.spent_usd)} spent${reserved}, warns at ${warn}%` });
    }
  }
  for (const p of cfg.providers) {
    if (!p.enabled) {
      items.push({ kind: "off", label: "disabled", href: `#/providers/${encodeURIComponent(p.name)}`,
        text: `Provider ${p.name} (${p.type}) is disabled: requests to it are refused` });
    } else if (!p.secrets_present) {
      items.push({ kind: "bad", label: "secret missing", href: `#/providers/${encodeURIComponent(p.name)}`,
        text: `Provider ${p.name}: a secret it names is no longer in the secret store` });
    }
  }
  return items;
}

/** One point per bucket summed over every series, as Numbers (for sparklines only). */
function bucketSums(data, field) {
  return data.buckets.map((_, i) => data.series.reduce((s, se) => s + Number(se.points[i][field] || 0), 0));
}

async function homePage() {
  const now = Date.now();
  const from24 = new Date(now - DAY_MS).toISOString();
  const [cfg, budgets, last24, agents30] = await Promise.all([
    providersConfig(),
    api("/api/v1/budgets"),
    series({ from: from24, granularity: "hour", group_by: "provider" }),
    series({ from: isoDay(todayStart() - 29 * DAY_MS), granularity: "day", group_by: "agent" }),
  ]);
  const totals = last24.series.map((s) => s.totals);
  const requests = sumInt(totals.map((t) => t.requests));
  const tokens = sumInt(totals.map((t) => t.tokens));
  const spend = sumUsd(totals.map((t) => t.cost_usd));
  const unpriced = sumInt(totals.map((t) => t.unpriced_requests));
  const enabled = cfg.providers.filter((p) => p.enabled).length;
  const agents = agents30.series.filter((s) => s.key !== null).length;

  const items = attentionItems(cfg, budgets);
  const attention = card({ id: "attention" },
    h("h2", {}, "Needs attention"),
    items.length
      ? h("ul", { class: "attention" }, items.map((i) =>
        h("li", { dataset: { kind: i.label } }, badge(i.label, i.kind), h("a", { href: i.href }, i.text))))
      : h("p", { class: "empty" }, "Nothing needs attention: no budget is near its cap and every provider is enabled."));

  const byProvider = last24.series.map((s) => h("tr", { dataset: { provider: s.key ?? "" } },
    h("td", {}, s.key ? h("a", { href: `#/providers/${encodeURIComponent(s.key)}` }, s.key) : "(none)"),
    num(fmtInt(s.totals.requests)), num(fmtInt(s.totals.tokens)), num(money(s.totals.cost_usd))));

  const recent = card({ id: "recent" }, h("h2", {}, "Recent requests"), h("p", { class: "loading" }, "Loading…"));
  const page = h("div", {},
    pageHead("Home", "The last 24 hours, in UTC"),
    h("div", { class: "cols" },
      attention,
      card({ id: "home-by-provider" }, h("h2", {}, "Spend by provider · 24 h"),
        table(["Provider", { label: "Requests", num: true }, { label: "Tokens", num: true }, { label: "Spend", num: true }],
          byProvider, { empty: "No requests in the last 24 hours." }))),
    h("div", { class: "grid" },
      stat("home-requests", "Requests · 24 h", fmtInt(requests),
        unpriced > 0n ? `${fmtInt(unpriced)} without a price` : "every request priced",
        sparkline(bucketSums(last24, "requests"), { title: "requests per hour" })),
      stat("home-spend", "Spend · 24 h", money(spend), "priced requests",
        sparkline(bucketSums(last24, "cost_nanousd"), { title: "spend per hour" })),
      stat("home-tokens", "Tokens · 24 h", fmtInt(tokens), "billable tokens",
        sparkline(bucketSums(last24, "tokens"), { title: "tokens per hour" })),
      stat("home-providers", "LLM providers", String(cfg.providers.length),
        `${enabled} enabled · ${cfg.providers.length - enabled} disabled`),
      stat("home-agents", "Agents · 30 days", String(agents),
        `${budgets.budgets.length} in an open budget window`)),
    recent);
  loadRecent(recent, last24).catch((e) => {
    if (!(e instanceof SignedOut)) recent.replaceChildren(h("h2", {}, "Recent requests"), errorBox(e));
  });
  return page;
}

/** RFC 4180 CSV → rows of fields. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n") { row.push(field.replace(/\r$/, "")); rows.push(row); row = []; field = ""; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/** The last requests: raw records of the latest hour that has any (records.csv is oldest first). */
async function loadRecent(container, last24) {
  const counts = bucketSums(last24, "requests");
  const last = counts.map((c, i) => (c > 0 ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
  let rows = [];
  if (last >= 0) {
    let from = last24.buckets[last];
    let r = await request(`/api/v1/usage/records.csv?${query({ from, limit: 2000 })}`);
    if (r.headers.get("x-aigw-truncated") === "true") {
      from = new Date(Date.now() - 120_000).toISOString();
      r = await request(`/api/v1/usage/records.csv?${query({ from, limit: 2000 })}`);
    }
    const [head, ...data] = parseCsv(await r.text());
    rows = data.filter((d) => d.length === head.length).map((d) => Object.fromEntries(head.map((k, i) => [k, d[i]])));
  }
  const tokenCols = ["input_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
    "cache_write_30m_tokens", "cache_write_12h_tokens", "output_tokens"];
  const shown = rows.slice(-12).reverse().map((r) => h("tr", { dataset: { requestId: r.request_id } },
    h("td", { class: "mono" }, r.time.slice(11, 19)),
    h("td", {}, h("a", { href: `#/providers/${encodeURIComponent(r.provider)}` }, r.provider)),
    h("td", {}, r.model_answered || r.model_requested || "—"),
    h("td", {}, r.agent || "—"),
    h("td", {}, badge(r.status, r.status.startsWith("2") ? "ok" : "bad")),
    num(fmtInt(sumInt(tokenCols.map((k) => r[k])))),
    num(r.cost_usd ? money(r.cost_usd) : "unpriced"),
    num(`${r.latency_ms} ms`)));
  container.replaceChildren(h("h2", {}, "Recent requests"),
    table(["Time (UTC)", "Provider", "Model", "Agent", "Status", { label: "Tokens", num: true },
      { label: "Cost", num: true }, { label: "Latency", num: true }], shown,
    { id: "recent-table", empty: "No requests in the last 24 hours." }));
  container.dataset.loaded = "true";
}

// --------------------------------------------------------------------------- providers

async function providersPage() {
  const [cfg, summary] = await Promise.all([providersConfig(), api("/api/v1/providers/summary?days=7")]);
  const usage = Object.fromEntries(summary.providers.map((p) => [p.provider, p]));
  const rows = cfg.providers.map((p) => {
    const u = usage[p.name];
    return h("tr", { dataset: { provider: p.name } },
      h("td", {}, h("a", { href: `#/providers/${encodeURIComponent(p.name)}` }, p.name)),
      h("td", {}, badge(p.type, "kind")),
      h("td", {}, statusBadge(p)),
      h("td", { class: "mono" }, p.base_url),
      num(u ? fmtInt(u.requests) : "0", { dataset: { k: "requests" } }),
      num(u ? money(u.cost_usd) : "$0.00", { dataset: { k: "spend" } }),
      h("td", {}, u ? sparkline(u.daily.map((d) => d.cost_nanousd), { width: 100, height: 24, title: "daily spend" }) : null));
  });
  return h("div", {},
    pageHead("LLM Providers", `${cfg.providers.length} configured · usage over the last 7 days (UTC)`),
    card({},
      table(["Name", "Type", "Status", "Upstream", { label: "Requests", num: true }, { label: "Spend", num: true }, "Trend"],
        rows, { id: "providers-table", empty: "No providers are configured." })));
}

function gatewayUrl(cfg) {
  return (cfg.gateway_url || localStorage.getItem(GATEWAY_KEY) || `${location.protocol}//${location.hostname}:8080`).replace(/\/+$/, "");
}

const DEFAULT_MODEL = {
  openai: "gpt-4o-mini",
  "openai-compatible": "your-model",
  anthropic: "claude-sonnet-4-5",
  google: "gemini-2.5-flash",
  bedrock: "anthropic.claude-3-5-haiku-20241022-v1:0",
};

const SNIPPETS = [
  { id: "curl", label: "curl", kinds: null },
  { id: "openai", label: "OpenAI (Python)", kinds: ["openai", "openai-compatible"] },
  { id: "anthropic", label: "Anthropic (Python)", kinds: ["anthropic"] },
  { id: "google", label: "Google (Python)", kinds: ["google"] },
  { id: "boto3", label: "boto3 (Bedrock)", kinds: ["bedrock"] },
];

function snippet(id, p, proxy) {
  const model = (p.models && p.models[0] && p.models[0].name) || DEFAULT_MODEL[p.type];
  const passthrough = p.authorization_passthrough;
  const ant = passthrough
    ? { key: "os.environ[\"ANTHROPIC_API_KEY\"]", header: "x-api-key: $ANTHROPIC_API_KEY",
      extra: p.gateway_token_required ? "x-gateway-token: $AIGW_API_KEY" : null }
    : { key: "os.environ[\"AIGW_API_KEY\"]", header: "x-api-key: $AIGW_API_KEY", extra: null };
  switch (id) {
    case "curl":
      switch (p.type) {
        case "anthropic":
          return [`curl -sS "${proxy}/v1/messages" \\`, `  -H "${ant.header}" \\`,
            ...(ant.extra ? [`  -H "${ant.extra}" \\`] : []),
            `  -H "anthropic-version: 2023-06-01" \\`, `  -H "content-type: application/json" \\`,
            `  -d '{"model": "${model}", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]}'`].join("\n");
        case "google":
          return [`curl -sS "${proxy}/v1beta/models/${model}:generateContent" \\`,
            `  -H "x-goog-api-key: $AIGW_API_KEY" \\`, `  -H "content-type: application/json" \\`,
            `  -d '{"contents": [{"parts": [{"text": "Hello"}]}]}'`].join("\n");
        case "bedrock":
          return [`curl -sS "${proxy}/model/${model}/converse" \\`,
            `  -H "Authorization: Bearer $AIGW_API_KEY" \\`, `  -H "content-type: application/json" \\`,
            `  -d '{"messages": [{"role": "user", "content": [{"text": "Hello"}]}]}'`].join("\n");
        default:
          return [`curl -sS "${proxy}/chat/completions" \\`,
            `  -H "Authorization: Bearer $AIGW_API_KEY" \\`, `  -H "content-type: application/json" \\`,
            `  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello"}]}'`].join("\n");
      }
    case "openai":
      return `import os
from openai import OpenAI

client = OpenAI(
    base_url="${proxy}",
    api_key=os.environ["AIGW_API_KEY"],  # the gateway key, not the provider's
)
reply = client.chat.completions.create(
    model="${model}",
    messages=[{"role": "user", "content": "Hello"}],
)
print(reply.choices[0].message.content)`;
    case "anthropic":
      return `import os
import anthropic

client = anthropic.Anthropic(
    base_url="${proxy}",
    api_key=${ant.key},${ant.extra ? `
    default_headers={"x-gateway-token": os.environ["AIGW_API_KEY"]},` : ""}
)
message = client.messages.create(
    model="${model}",
    max_tokens=256,
    messages=[{"role": "user", "content": "Hello"}],
)
print(message.content[0].text)`;
    case "google":
      return `import os
from google import genai
from google.genai import types

client = genai.Client(
    api_key=os.environ["AIGW_API_KEY"],  # the gateway key, not the provider's
    http_options=types.HttpOptions(base_url="${proxy}"),
)
reply = client.models.generate_content(model="${model}", contents="Hello")
print(reply.text)`;
    case "boto3":
      return `import os
import boto3

# Bearer mode: the gateway key stands in for a Bedrock API key (needs an https gateway URL).
os.environ["AWS_BEARER_TOKEN_BEDROCK"] = os.environ["AIGW_API_KEY"]
client = boto3.client(
    "bedrock-runtime",
    region_name="${p.region || "us-east-1"}",
    endpoint_url="${proxy}",
)
reply = client.converse(
    modelId="${model}",
    messages=[{"role": "user", "content": [{"text": "Hello"}]}],
)
print(reply["output"]["message"]["content"][0]["text"])`;
    default:
      return "";
  }
}

async function copy(text, button) {
  const done = (label) => {
    button.textContent = label;
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  };
  try {
    await navigator.clipboard.writeText(text);
    done("Copied");
  } catch {
    done("Select and copy");
  }
}

function copyButton(getText) {
  const b = h("button", { type: "button", class: "small secondary copy" }, "Copy");
  b.addEventListener("click", () => copy(getText(), b));
  return b;
}

function connectCard(p, cfg, onGateway) {
  const proxyOf = () => `${gatewayUrl(cfg)}${p.proxy_path}`;
  const pre = h("pre", { id: "snippet" });
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const usable = SNIPPETS.find((s) => s.kinds && s.kinds.includes(p.type));
  let current = usable ? usable.id : "curl";
  const paint = () => {
    pre.textContent = snippet(current, p, proxyOf());
    pre.dataset.snippet = current;
    for (const b of tabs.children) b.setAttribute("aria-selected", String(b.dataset.tab === current));
  };
  for (const s of SNIPPETS) {
    const ok = !s.kinds || s.kinds.includes(p.type);
    tabs.append(h("button", {
      type: "button", role: "tab", dataset: { tab: s.id }, disabled: !ok,
      title: ok ? null : `This provider speaks the ${p.type} API; use the ${usable ? usable.label : "curl"} snippet`,
      on: { click: () => { current = s.id; paint(); } },
    }, s.label));
  }
  const gw = h("input", { id: "gateway-url", type: "url", value: gatewayUrl(cfg), size: 40, readonly: !!cfg.gateway_url });
  gw.addEventListener("change", () => {
    const v = gw.value.trim().replace(/\/+$/, "");
    if (v) localStorage.setItem(GATEWAY_KEY, v); else localStorage.removeItem(GATEWAY_KEY);
    paint();
    onGateway(proxyOf());
  });
  paint();
  return card({ id: "connect" },
    h("h2", {}, "Connect"),
    h("p", { class: "muted" }, "Clients send the gateway's key (", h("code", {}, "$AIGW_API_KEY"),
      "), never the provider's; the gateway adds the upstream credential."),
    h("div", { class: "controls" },
      h("label", {}, cfg.gateway_url ? "Gateway URL (from the sidecar's configuration)" : "Gateway URL (Envoy's listener; saved in this browser)", gw)),
    h("div", { class: "tabs-wrap" }, tabs),
    h("div", { class: "snippet" }, pre, copyButton(() => pre.textContent)));
}

function testCard(p) {
  const out = h("div", { id: "test-result", "aria-live": "polite" });
  const button = h("button", { type: "button", id: "test-button" }, "Test connection");
  button.addEventListener("click", async () => {
    button.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "Calling the upstream…"));
    delete out.dataset.outcome;
    try {
      const r = await api(`/api/v1/providers/${encodeURIComponent(p.name)}/test`, { method: "POST" });
      const outcome = r.ok ? "pass" : r.supported ? "fail" : "unsupported";
      const title = r.ok ? "Connection works" : r.supported ? "Connection failed" : "Not tested";
      const facts = [r.request, r.status != null ? `HTTP ${r.status}` : null,
        r.latency_ms != null ? `${r.latency_ms} ms` : null].filter(Boolean).join(" · ");
      out.replaceChildren(h("div", { class: `result ${outcome}` },
        h("strong", {}, title), " — ", h("span", { class: "message" }, r.message),
        facts ? h("div", { class: "detail" }, facts) : null));
      out.dataset.outcome = outcome;
    } catch (e) {
      if (e instanceof SignedOut) return;
      out.replaceChildren(h("div", { class: "result fail" }, h("strong", {}, "Test failed to run"), " — ", e.message));
      out.dataset.outcome = "error";
    } finally {
      button.disabled = false;
    }
  });
  return card({ id: "test" },
    h("h2", {}, "Test connection"),
    h("p", { class: "muted" }, "A minimal real call to the upstream with the configured credential (it lists the models; 5 s timeout). The key never leaves the sidecar."),
    button, out);
}

function connectionCard(p, cfg) {
  const proxy = h("code", { id: "proxy-url" }, `${gatewayUrl(cfg)}${p.proxy_path}`);
  const rows = [
    ["type", "Type", badge(p.type, "kind")],
    ["status", "Status", statusBadge(p)],
    ["proxy", "Proxy URL", h("span", { class: "copyable" }, proxy, copyButton(() => proxy.textContent))],
    ["upstream", "Upstream base URL", h("code", {}, p.base_url)],
    ["passthrough", "Authorization passthrough", p.authorization_passthrough
      ? `on — clients' own credentials go upstream${p.gateway_token_required ? "; x-gateway-token required" : ""}`
      : "off"],
  ];
  if (p.api_key_secret || p.type !== "bedrock") {
    rows.push(["secret", "Upstream key (secret reference)", p.api_key_secret
      ? h("span", {}, h("code", {}, p.api_key_secret), " ",
        p.secrets_present ? badge("in the secret store", "ok") : badge("missing", "bad"))
      : h("span", { class: "muted" }, "none (no key is sent upstream)")]);
  }
  if (p.region) rows.push(["region", "Region", p.region]);
  if (p.aws) {
    rows.push(["aws", "AWS credentials", p.aws.credentials === "secrets"
      ? h("span", {}, "static keys from secrets ", p.aws.secret_refs.map((s) => [h("code", {}, s), " "]),
        p.secrets_present ? badge("in the secret store", "ok") : badge("missing", "bad"))
      : "the AWS default chain (environment, web identity, shared files, instance metadata)"]);
    if (p.aws.assume_role_arn) rows.push(["role", "Assumed role", h("code", {}, p.aws.assume_role_arn)]);
  }
  rows.push(["access", "Access rules", p.own_access_rules ? "its own access list" : "the gateway's default access"]);
  const dl = h("dl", { class: "kv" }, rows.map(([k, label, value]) => [h("dt", {}, label), h("dd", { dataset: { k } }, value)]));
  return { node: card({ id: "connection" }, h("h2", {}, "Connection"), dl), setProxy: (url) => { proxy.textContent = url; } };
}

function modelsCard(p) {
  if (!p.models) {
    return card({ id: "prices" }, h("h2", {}, "Models & prices"),
      h("p", { class: "muted" }, "Every model is allowed; prices come from the built-in catalog."));
  }
  const fields = [...new Set(p.models.flatMap((m) => Object.keys(m.prices)))].sort();
  const rows = p.models.map((m) => h("tr", { dataset: { model: m.name } },
    h("td", {}, h("code", {}, m.name)),
    fields.length ? fields.map((f) => num(m.prices[f] != null ? `$${m.prices[f]}` : "catalog")) : h("td", { class: "muted" }, "catalog")));
  return card({ id: "prices" }, h("h2", {}, "Models & prices"),
    h("p", { class: "muted" }, "Only these models are allowed. Price overrides are USD per million tokens; others come from the built-in catalog."),
    table(["Model", ...(fields.length ? fields.map((f) => ({ label: f.replaceAll("_", " "), num: true })) : ["Prices"])], rows, { id: "prices-table" }));
}

async function providerPage(name) {
  const from = isoDay(todayStart() - 6 * DAY_MS);
  const [cfg, summary, byModel] = await Promise.all([
    providersConfig(),
    api("/api/v1/providers/summary?days=7"),
    series({ from, granularity: "day", group_by: "model", provider: name }),
  ]);
  const p = cfg.providers.find((x) => x.name === name);
  if (!p) throw new Error(`No provider named '${name}' is configured.`);
  const u = summary.providers.find((x) => x.provider === name) || { requests: 0, cost_usd: "0.00", tokens: { total: 0 }, daily: [], unpriced_requests: 0 };
  const days = summary.days.length;
  const strip = h("div", { class: "grid", id: "p-strip" },
    stat("p-spend", `Spend · ${days} days`, money(u.cost_usd),
      u.unpriced_requests ? `${fmtInt(u.unpriced_requests)} requests without a price` : "priced requests",
      sparkline(u.daily.map((d) => d.cost_nanousd), { title: "daily spend" })),
    stat("p-requests", `Requests · ${days} days`, fmtInt(u.requests), `${summary.days[0]} – ${summary.days[days - 1]}`,
      sparkline(u.daily.map((d) => d.requests), { title: "daily requests" })),
    stat("p-tokens", `Tokens · ${days} days`, fmtInt(u.tokens.total),
      `${fmtInt(u.tokens.input ?? 0)} in · ${fmtInt(u.tokens.output ?? 0)} out`,
      sparkline(u.daily.map((d) => d.tokens), { title: "daily tokens" })));

  const maxCost = Math.max(1, ...byModel.series.map((s) => Number(s.totals.cost_nanousd || 0)));
  const modelRows = byModel.series.map((s) => {
    const bar = h("div", { class: "hbar" });
    bar.style.width = `${(100 * Number(s.totals.cost_nanousd || 0)) / maxCost}%`;
    return h("tr", { dataset: { model: s.key ?? "" } },
      h("td", {}, s.key ?? "(unknown model)", bar),
      num(fmtInt(s.totals.requests), { dataset: { k: "requests" } }),
      num(fmtInt(s.totals.tokens), { dataset: { k: "tokens" } }),
      num(money(s.totals.cost_usd), { dataset: { k: "spend" } }));
  });
  const conn = connectionCard(p, cfg);
  return h("div", {},
    h("div", { class: "crumbs" }, h("a", { href: "#/providers" }, "LLM Providers"), " / ", name),
    h("div", { class: "page-head" }, h("h1", {}, name, " ", badge(p.type, "kind"), " ", statusBadge(p))),
    strip,
    h("div", { class: "cols" },
      h("div", {}, conn.node, testCard(p)),
      h("div", {},
        card({ id: "model-spend" }, h("h2", {}, `Spend per model · ${days} days`),
          table(["Model", { label: "Requests", num: true }, { label: "Tokens", num: true }, { label: "Spend", num: true }],
            modelRows, { id: "model-spend-table", empty: "No requests in the last 7 days." }),
          h("p", {}, h("a", { href: `#/usage?${query({ group_by: "model", provider: name, from })}` }, "Open in Cost & Usage →"))),
        modelsCard(p))),
    connectCard(p, cfg, conn.setProxy));
}

// --------------------------------------------------------------------------- cost & usage

const GROUPS = [["provider", "Provider"], ["model", "Model"], ["token_type", "Token type"], ["user", "User"], ["agent", "Agent"]];
const METRICS = [["cost", "Spend"], ["requests", "Requests"], ["tokens", "Tokens"]];
const optionsCache = new Map();

/** The values each filter can take in a range: one aggregated query per dimension. */
async function filterOptions(apiFrom, apiTo) {
  const key = `${apiFrom}|${apiTo}`;
  if (!optionsCache.has(key)) {
    const dims = ["model", "user", "agent"];
    const p = Promise.all(dims.map((d) => series({ from: apiFrom, to: apiTo, granularity: "day", group_by: d })))
      .then((rs) => Object.fromEntries(dims.map((d, i) => [d, rs[i].series.map((s) => s.key).filter((k) => k !== null)])));
    optionsCache.set(key, p);
    p.catch(() => optionsCache.delete(key));
  }
  return optionsCache.get(key);
}

function usageState(params) {
  const today = isoDay(todayStart());
  const s = {
    from: params.get("from") || isoDay(todayStart() - 6 * DAY_MS),
    to: params.get("to") || today,
    granularity: params.get("granularity") === "hour" ? "hour" : "day",
    group_by: GROUPS.some(([g]) => g === params.get("group_by")) ? params.get("group_by") : "provider",
    metric: METRICS.some(([m]) => m === params.get("metric")) ? params.get("metric") : "cost",
    provider: params.get("provider") || "",
    model: params.get("model") || "",
    user: params.get("user") || "",
    agent: params.get("agent") || "",
  };
  if (s.group_by === "token_type" && s.metric === "cost") s.metric = "tokens";
  return s;
}

/** The API's parameters: `to` is the day after the last day shown. */
function apiParams(s) {
  const to = parseDay(s.to);
  return {
    from: s.from,
    to: Number.isNaN(to) ? s.to : isoDay(to + DAY_MS),
    granularity: s.granularity,
    group_by: s.group_by,
    provider: s.provider, model: s.model, user: s.user, agent: s.agent,
  };
}

function select(id, label, options, value) {
  const sel = h("select", { id, name: id }, options.map(([v, text]) => h("option", { value: v }, text)));
  sel.value = value;
  return h("label", { for: id }, label, sel);
}

async function usagePage(params) {
  const cfg = await providersConfig();
  const state = usageState(params);
  const results = h("div", { id: "usage-results" });
  const controls = h("form", { class: "controls", id: "usage-controls" });
  const fromInput = h("input", { id: "f-from", type: "date", value: state.from });
  const toInput = h("input", { id: "f-to", type: "date", value: state.to });
  const presets = h("div", { class: "presets" }, [["Today", 0], ["7 days", 6], ["30 days", 29], ["90 days", 89]].map(([label, back]) =>
    h("button", { type: "button", class: "small secondary", dataset: { days: back + 1 }, on: { click: () => {
      fromInput.value = isoDay(todayStart() - back * DAY_MS);
      toInput.value = isoDay(todayStart());
      if (back === 0) controls.querySelector("#f-granularity").value = "hour";
      update();
    } } }, label)));
  const filterSlots = { model: h("span"), user: h("span"), agent: h("span") };
  append(controls, [
    h("label", { for: "f-from" }, "From (UTC)", fromInput),
    h("label", { for: "f-to" }, "To (UTC, included)", toInput),
    h("label", {}, "Range", presets),
    select("f-granularity", "Granularity", [["day", "Day"], ["hour", "Hour"]], state.granularity),
    select("f-group", "Group by", GROUPS, state.group_by),
    select("f-metric", "Show", METRICS, state.metric),
    select("f-provider", "Provider", [["", "All providers"], ...cfg.providers.map((p) => [p.name, p.name])], state.provider),
    filterSlots.model, filterSlots.user, filterSlots.agent,
  ]);
  const exportButton = h("button", { type: "button", id: "export-csv", class: "secondary" }, "Export CSV");

  const read = () => ({
    from: fromInput.value, to: toInput.value,
    granularity: controls.querySelector("#f-granularity").value,
    group_by: controls.querySelector("#f-group").value,
    metric: controls.querySelector("#f-metric").value,
    provider: controls.querySelector("#f-provider").value,
    model: controls.querySelector("#f-model")?.value ?? state.model,
    user: controls.querySelector("#f-user")?.value ?? state.user,
    agent: controls.querySelector("#f-agent")?.value ?? state.agent,
  });

  async function fillFilters(s) {
    const a = apiParams(s);
    let opts = { model: [], user: [], agent: [] };
    try {
      opts = await filterOptions(a.from, a.to);
    } catch { /* the results show the error */ }
    for (const [dim, label] of [["model", "Model"], ["user", "User"], ["agent", "Agent"]]) {
      const values = opts[dim].includes(s[dim]) || !s[dim] ? opts[dim] : [...opts[dim], s[dim]];
      const node = select(`f-${dim}`, label, [["", `All ${label.toLowerCase()}s`], ...values.map((v) => [v, v])], s[dim]);
      node.querySelector("select").addEventListener("change", update);
      filterSlots[dim].replaceChildren(node);
    }
  }

  let seq = 0;
  async function load(s) {
    const mine = ++seq;
    document.body.dataset.ready = "usage-loading";
    const metricSel = controls.querySelector("#f-metric");
    metricSel.querySelector('option[value="cost"]').disabled = s.group_by === "token_type";
    if (s.group_by === "token_type" && s.metric === "cost") { s.metric = "tokens"; metricSel.value = "tokens"; }
    const qs = query({ ...s });
    history.replaceState(null, "", `#/usage?${qs}`);
    const a = apiParams(s);
    const [data] = await Promise.all([series(a).catch((e) => e), fillFilters(s)]);
    if (mine !== seq) return;
    if (data instanceof SignedOut) return;
    results.replaceChildren(...(data instanceof Error ? [errorBox(data)] : usageResults(data, s)));
    results.dataset.api = query(a);
    results.dataset.query = qs;
    // On the first load the page is not attached yet; render() says ready then.
    if (results.isConnected) document.body.dataset.ready = "usage";
  }

  function update() {
    load(read()).catch((e) => {
      if (!(e instanceof SignedOut)) results.replaceChildren(errorBox(e));
    });
  }
  controls.addEventListener("change", (ev) => { if (!ev.target.closest("[id^=f-model],[id^=f-user],[id^=f-agent]")) update(); });
  controls.addEventListener("submit", (ev) => { ev.preventDefault(); update(); });

  exportButton.addEventListener("click", async () => {
    exportButton.disabled = true;
    try {
      const r = await request(`/api/v1/usage/series.csv?${query(apiParams(read()))}`);
      const name = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "")?.[1] || "usage.csv";
      const url = URL.createObjectURL(await r.blob());
      const a = h("a", { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      if (!(e instanceof SignedOut)) results.prepend(errorBox(e));
    } finally {
      exportButton.disabled = false;
    }
  });

  await load(state);
  return h("div", {},
    pageHead("Cost & Usage", "Aggregated usage records, UTC buckets", exportButton),
    card({}, controls),
    results);
}

function metricOf(point, metric) {
  if (metric === "cost") return { value: Number(point.cost_nanousd || 0), text: money(point.cost_usd) };
  return { value: Number(point[metric] || 0), text: fmtInt(point[metric]) };
}

function usageResults(data, s) {
  const label = (k) => (k === null ? "(none)" : k);
  const chartSeries = data.series.map((se) => ({
    key: se.key, label: label(se.key),
    values: se.points.map((pt) => metricOf(pt, s.metric).value),
    titles: se.points.map((pt) => metricOf(pt, s.metric).text),
  }));
  const multiDay = data.buckets.length > 24;
  const buckets = data.buckets.map((b) => ({ label: bucketLabel(b, data.granularity, multiDay), title: fmtTime(b) }));
  const metricName = METRICS.find(([m]) => m === s.metric)[1];
  const chart = h("div", { id: "usage-chart", dataset: { metric: s.metric, series: data.series.length } },
    stackedBars({ buckets, series: chartSeries, tick: s.metric === "cost" ? usdTick : intTick, label: `${metricName} by ${s.group_by}` }));
  const legend = h("div", { class: "legend" }, chartSeries.map((se, i) => {
    const sw = h("span", { class: "swatch" });
    sw.style.background = color(i);
    return h("span", {}, sw, se.label);
  }));
  const costed = data.group_by !== "token_type";
  const groupName = GROUPS.find(([g]) => g === data.group_by)[1];
  const rows = data.series.map((se) => h("tr", { dataset: { key: se.key ?? "" } },
    h("td", {}, label(se.key)),
    num(fmtInt(se.totals.requests), { dataset: { k: "requests" } }),
    num(fmtInt(se.totals.tokens), { dataset: { k: "tokens" } }),
    costed ? num(money(se.totals.cost_usd), { dataset: { k: "spend" } }) : null,
    num(fmtInt(se.totals.unpriced_requests), { dataset: { k: "unpriced" } })));
  const t = data.series.map((se) => se.totals);
  const foot = h("tr", { id: "usage-total" },
    h("td", {}, "Total"),
    num(costed ? fmtInt(sumInt(t.map((x) => x.requests))) : "—", { dataset: { k: "requests" } }),
    num(fmtInt(sumInt(t.map((x) => x.tokens))), { dataset: { k: "tokens" } }),
    costed ? num(money(sumUsd(t.map((x) => x.cost_usd))), { dataset: { k: "spend" } }) : null,
    num(costed ? fmtInt(sumInt(t.map((x) => x.unpriced_requests))) : "—", { dataset: { k: "unpriced" } }));
  const head = [groupName, { label: "Requests", num: true }, { label: "Tokens", num: true },
    ...(costed ? [{ label: "Spend", num: true }] : []), { label: "Unpriced", num: true }];

  const detailRows = data.buckets.map((b, i) => h("tr", {},
    h("td", { class: "mono" }, fmtTime(b)),
    data.series.map((se) => num(metricOf(se.points[i], s.metric).text))));
  const details = data.series.length
    ? h("details", {}, h("summary", {}, `${metricName} per ${data.granularity} and ${groupName.toLowerCase()}`),
      table(["Bucket", ...data.series.map((se) => ({ label: label(se.key), num: true }))], detailRows, { id: "usage-buckets" }))
    : null;
  return [
    card({}, h("h2", {}, `${metricName} by ${groupName.toLowerCase()}`),
      data.series.length ? [chart, legend] : h("p", { class: "empty" }, "No usage in this range.")),
    card({}, table(head, rows, { id: "usage-table", foot: data.series.length ? foot : null, empty: "No usage in this range." }),
      s.group_by === "token_type" ? h("p", { class: "muted" }, "Requests count once per token type they used; cost is not split by token type.") : null,
      details),
  ];
}

// --------------------------------------------------------------------------- budgets

async function budgetsPage() {
  const data = await api("/api/v1/budgets");
  const list = [...data.budgets].sort((a, b) => b.used_percent - a.used_percent || a.agent.localeCompare(b.agent));
  const level = (b) => (b.used_percent >= 100 ? "bad" : b.used_percent >= (b.warn_at_percent ?? 80) ? "warn" : "ok");
  const rows = list.map((b) => {
    const meter = h("div", { class: `meter ${level(b)}`, role: "meter", "aria-valuenow": b.used_percent, "aria-valuemin": 0, "aria-valuemax": 100 }, h("span"));
    meter.firstChild.style.width = `${Math.min(100, b.used_percent)}%`;
    return h("tr", { dataset: { agent: b.agent } },
      h("td", {}, h("a", { href: `#/usage?${query({ agent: b.agent, group_by: "provider" })}` }, b.agent)),
      num(money(b.spent_usd), { dataset: { k: "spent" } }),
      num(money(b.reserved_usd), { dataset: { k: "reserved" } }),
      num(money(b.cap_usd), { dataset: { k: "cap" } }),
      h("td", { dataset: { k: "used" } }, meter, h("span", { class: "sub" }, `${b.used_percent}%`),
        level(b) !== "ok" ? [" ", badge(level(b) === "bad" ? "over cap" : "near cap", level(b))] : null),
      h("td", { dataset: { k: "window" } }, b.window, b.warn_at_percent ? h("div", { class: "muted" }, `warns at ${b.warn_at_percent}%`) : null),
      h("td", { class: "mono", dataset: { k: "start" } }, fmtTime(b.window_start)),
      h("td", { dataset: { k: "resets" } }, h("span", { class: "mono" }, fmtTime(b.resets_at)), h("div", { class: "muted" }, relative(b.resets_at))));
  });
  const over = list.filter((b) => level(b) === "bad").length;
  const near = list.filter((b) => level(b) === "warn").length;
  return h("div", {},
    pageHead("Budgets", "Spend caps per agent, enforced before the upstream call. An agent is listed once it made a request in its current window."),
    h("div", { class: "grid" },
      stat("b-agents", "Agents in a window", String(list.length), null),
      stat("b-over", "Over cap", String(over), "new requests are refused"),
      stat("b-near", "Near cap", String(near), "at or above the warning level")),
    card({},
      table(["Agent", { label: "Spent", num: true }, { label: "Reserved", num: true }, { label: "Cap", num: true },
        "Used", "Window", "Window start", "Resets"], rows, { id: "budgets-table", empty: "No agent has made a request in its current budget window, or no budget is configured." })));
}

// --------------------------------------------------------------------------- MCP tools

async function toolsPage() {
  const [srv, calls] = await Promise.all([api("/api/v1/mcp/servers"), api("/api/v1/tool-calls?limit=200")]);
  const serverRows = srv.servers.map((s) =>
    h("tr", { dataset: { server: s.name } },
      h("td", {}, s.name),
      h("td", {}, s.connected ? badge("connected", "ok") : badge("down", "bad")),
      num(fmtInt(s.tools), { dataset: { k: "tools" } }),
      h("td", { class: "mono" }, s.url),
      h("td", { class: "muted", dataset: { k: "error" } }, s.error || "")));
  const callRows = calls.tool_calls.map((c) =>
    h("tr", { dataset: { call: `${c.server}/${c.tool}/${c.status}` } },
      h("td", { class: "mono" }, fmtTime(new Date(c.time_ms).toISOString())),
      h("td", {}, c.principal, c.agent ? h("div", { class: "muted" }, `agent ${c.agent}`) : null),
      h("td", {}, c.server),
      h("td", { class: "mono" }, c.tool),
      h("td", {}, badge(c.status, c.status === "ok" ? "ok" : c.status === "tool_error" ? "warn" : "bad")),
      num(`${fmtInt(c.latency_ms)} ms`, { dataset: { k: "latency" } }),
      num(fmtInt(c.request_bytes), { dataset: { k: "request-bytes" } }),
      num(fmtInt(c.response_bytes), { dataset: { k: "response-bytes" } })));
  const failed = calls.tool_calls.filter((c) => c.status !== "ok").length;
  return h("div", {},
    pageHead("MCP Tools", "The upstream MCP servers behind /mcp, and the latest tool calls through the gateway."),
    h("div", { class: "grid" },
      stat("t-servers", "Servers connected", `${srv.servers.filter((s) => s.connected).length} / ${srv.servers.length}`, null),
      stat("t-calls", "Recent calls", String(calls.tool_calls.length), "the latest 200"),
      stat("t-failed", "Not ok", String(failed), "tool errors, refusals, upstream errors")),
    card({}, table(["Server", "Status", { label: "Tools", num: true }, "URL", "Last error"], serverRows,
      { id: "mcp-servers-table", empty: "No MCP server is configured." })),
    card({}, table(["Time", "Principal", "Server", "Tool", "Status", { label: "Latency", num: true },
      { label: "Request bytes", num: true }, { label: "Response bytes", num: true }], callRows,
      { id: "tool-calls-table", empty: "No tool call yet." })));
}

// --------------------------------------------------------------------------- performance

const PERF_RANGES = [["1", "24 hours"], ["7", "7 days"], ["30", "30 days"]];

/** Latency, time to first token and errors per provider and per model, as the store computed them. */
async function performancePage(params) {
  const days = PERF_RANGES.some(([d]) => d === params.get("days")) ? params.get("days") : "7";
  const to = Date.now();
  const range = { from: new Date(to - Number(days) * DAY_MS).toISOString(), to: new Date(to).toISOString() };
  const url = (group) => `/api/v1/analytics/latency?${new URLSearchParams({ ...range, granularity: days === "30" ? "day" : "hour", group_by: group })}`;
  const [byProvider, byModel] = await Promise.all([api(url("provider")), api(url("model"))]);
  const ms = (v) => (v == null ? "—" : `${fmtInt(v)} ms`);
  const pct = (r) => `${(r * 100).toFixed(r > 0 && r < 0.001 ? 3 : 1)}%`;
  const rowsOf = (data, kind) => data.totals.map((t) => {
    const trend = data.points.filter((p) => p.key === t.key).map((p) => p.latency_ms.p99);
    return h("tr", { dataset: { [kind]: t.key ?? "" } },
      h("td", {}, t.key ?? "(none)"),
      num(fmtInt(t.requests), { dataset: { k: "requests" } }),
      num(`${fmtInt(t.errors)} (${pct(t.error_rate)})`, { dataset: { k: "errors" } }),
      num(ms(t.latency_ms.p50), { dataset: { k: "latency-p50" } }),
      num(ms(t.latency_ms.p90), { dataset: { k: "latency-p90" } }),
      num(ms(t.latency_ms.p99), { dataset: { k: "latency-p99" } }),
      num(ms(t.ttft_ms?.p50), { dataset: { k: "ttft-p50" } }),
      num(ms(t.ttft_ms?.p99), { dataset: { k: "ttft-p99" } }),
      h("td", {}, trend.length > 1 ? sparkline(trend, { title: `p99 latency per ${data.granularity}` }) : ""));
  });
  const head = (first) => [first, { label: "Requests", num: true }, { label: "Errors", num: true },
    { label: "Latency p50", num: true }, { label: "p90", num: true }, { label: "p99", num: true },
    { label: "First token p50", num: true }, { label: "p99", num: true }, "p99 trend"];
  const presets = h("div", { class: "presets" }, PERF_RANGES.map(([d, label]) =>
    h("button", { type: "button", class: `small ${d === days ? "" : "secondary"}`, dataset: { days: d },
      on: { click: () => { location.hash = `#/performance?days=${d}`; } } }, label)));
  return h("div", {},
    pageHead("Performance", "Latency and time to first token (nearest-rank percentiles) and error rates, computed by the usage store. Errors: status 400 and up, or the upstream failed."),
    card({}, presets),
    card({ id: "perf-providers", dataset: { api: url("provider") } }, h("h3", {}, "By provider"),
      table(head("Provider"), rowsOf(byProvider, "provider"), { id: "perf-provider-table", empty: "No request in this range." })),
    card({ id: "perf-models", dataset: { api: url("model") } }, h("h3", {}, "By model"),
      table(head("Model"), rowsOf(byModel, "model"), { id: "perf-model-table", empty: "No request in this range." })));
}

// --------------------------------------------------------------------------- requests

const REQUEST_FILTERS = ["provider", "model", "user", "agent", "status"];
const STATUSES = [["", "Any status"], ["2xx", "2xx"], ["4xx", "4xx"], ["429", "429"], ["5xx", "5xx"], ["error", "Errors (no answer, 4xx, 5xx)"]];

async function requestsPage(params) {
  const cfg = await providersConfig();
  const from = params.get("from") || isoDay(todayStart() - 6 * DAY_MS);
  const to = params.get("to") || isoDay(todayStart());
  const query = new URLSearchParams({ from: `${from}T00:00:00Z`, to: new Date(parseDay(to) + DAY_MS).toISOString(), limit: "200" });
  for (const k of REQUEST_FILTERS) if (params.get(k)) query.set(k, params.get(k));
  const data = await api(`/api/v1/requests?${query}`);
  const controls = h("form", { class: "controls", id: "requests-controls" });
  const text = (k, label) => h("label", { for: `r-${k}` }, label, h("input", { id: `r-${k}`, value: params.get(k) || "", placeholder: "any" }));
  append(controls, [
    h("label", { for: "r-from" }, "From (UTC)", h("input", { id: "r-from", type: "date", value: from })),
    h("label", { for: "r-to" }, "To (UTC, included)", h("input", { id: "r-to", type: "date", value: to })),
    select("r-provider", "Provider", [["", "All providers"], ...cfg.providers.map((p) => [p.name, p.name])], params.get("provider") || ""),
    text("model", "Model"), text("user", "User"), text("agent", "Agent"),
    select("r-status", "Status", STATUSES, params.get("status") || ""),
    h("button", { type: "submit", id: "r-apply" }, "Apply"),
  ]);
  controls.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const k of ["from", "to", ...REQUEST_FILTERS]) {
      const v = controls.querySelector(`#r-${k}`).value.trim();
      if (v) next.set(k, v);
    }
    location.hash = `#/requests?${next}`;
  });
  const rows = data.requests.map((r) =>
    h("tr", { dataset: { request: r.request_id } },
      h("td", { class: "mono" }, h("a", { href: `#/requests/${encodeURIComponent(r.request_id)}` }, fmtTime(new Date(r.time_ms).toISOString()))),
      h("td", {}, r.provider),
      h("td", { class: "mono" }, r.model_answered || r.model_requested || "—"),
      h("td", {}, r.user || r.principal, r.agent ? h("div", { class: "muted" }, `agent ${r.agent}`) : null),
      h("td", { dataset: { k: "status" } }, badge(String(r.status), r.status >= 200 && r.status < 400 ? "ok" : "bad")),
      h("td", {}, r.streamed ? "stream" : "—"),
      num(fmtInt(tokenTotal(r.usage)), { dataset: { k: "tokens" } }),
      num(r.cost_nanousd == null ? "unpriced" : money(fromNano(BigInt(r.cost_nanousd))), { dataset: { k: "cost" } }),
      num(`${fmtInt(r.latency_ms)} ms`, { dataset: { k: "latency" } }),
      h("td", { dataset: { k: "logged" } }, r.logged ? badge("logged", "kind") : "")));
  return h("div", {},
    pageHead("Requests", "Calls through the gateway, newest first (at most 200). Open one to see its record and, for providers that log requests, its bodies."),
    card({}, controls),
    card({ id: "requests-results", dataset: { api: `/api/v1/requests?${query}` } }, table(["Time", "Provider", "Model", "Who", "Status", "Mode", { label: "Tokens", num: true },
      { label: "Cost", num: true }, { label: "Latency", num: true }, "Log"], rows,
      { id: "requests-table", empty: "No request matches." })));
}

const tokenTotal = (u) => ["input", "cache_read", "cache_write_5m", "cache_write_1h", "cache_write_30m", "cache_write_12h", "output"]
  .reduce((s, k) => s + BigInt(u[k] || 0), 0n);

/** A body for reading: pretty-printed when it is JSON, as stored otherwise. */
function bodyText(s) {
  try { return JSON.stringify(JSON.parse(s), null, 2); } catch { return s; }
}

async function requestPage(id) {
  const data = await api(`/api/v1/requests/${encodeURIComponent(id)}`);
  const fields = (r) => h("dl", { class: "fields" }, [
    ["Time", fmtTime(new Date(r.time_ms).toISOString())], ["Provider", `${r.provider} (${r.provider_type})`],
    ["Model", `${r.model_requested || "—"} → ${r.model_answered || "—"}`], ["Principal", r.principal],
    ["User", r.user || "—"], ["Agent", r.agent || "—"], ["Path", r.api_path], ["Status", String(r.status)],
    ["Outcome", r.outcome], ["Streamed", r.streamed ? "yes" : "no"], ["Tokens", fmtInt(tokenTotal(r.usage))],
    ["Cost", r.cost_nanousd == null ? `unpriced (${r.unpriced_reason || "no usage"})` : money(fromNano(BigInt(r.cost_nanousd)))],
    ["Latency", `${fmtInt(r.latency_ms)} ms`], ["First byte", r.ttfb_ms == null ? "—" : `${fmtInt(r.ttfb_ms)} ms`],
  ].map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { k: k.toLowerCase().replace(" ", "-") } }, v)]));
  const log = data.log;
  const cut = (t) => (t ? badge("cut at the size limit", "warn") : null);
  return h("div", {},
    pageHead(h("span", { class: "mono" }, id), "One request: its usage record and, when its provider logs requests, what was sent and received (redacted)."),
    data.records.map((r) => card({ class: "card record" }, fields(r))),
    log
      ? [card({ id: "request-body" }, h("h3", {}, "Request body ", cut(log.request_truncated)), h("pre", { class: "body" }, bodyText(log.request_body))),
        card({ id: "response-body" }, h("h3", {}, log.response_kind === "text" ? "Response (the stream's text) " : "Response body ", cut(log.response_truncated)),
          h("pre", { class: "body" }, log.response_kind === "text" ? log.response_body : bodyText(log.response_body)))]
      : card({ id: "no-log" }, h("p", { class: "muted" }, "No bodies were logged for this request (its provider does not have log_requests on, or the log was dropped or expired).")));
}

// --------------------------------------------------------------------------- start

render();
