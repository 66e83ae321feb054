// Drives the operator dashboard in a real headless Chromium (Debian's, via playwright-core:
// no browser download) and reports what the pages show, as JSON, for tests/test_dashboard.py
// to compare with the admin API. It asserts nothing itself beyond "the page got there".
//
//   node tests/browser/dashboard.mjs <config.json>
//
// config: { adminUrl, token, gatewayUrl, artifacts, chromium, provider, failingProvider }
// stdout: one JSON object (see `out` below). Screenshots: <artifacts>/<page>.png.

import { chromium } from "playwright-core";
import fs from "node:fs/promises";
import path from "node:path";

const cfg = JSON.parse(await fs.readFile(process.argv[2], "utf8"));
await fs.mkdir(cfg.artifacts, { recursive: true });

// The flags this machine needs (no network for Chromium's own services, no GPU, as root).
const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  chromiumSandbox: false,
  args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  timeout: 30_000,
});

const out = { console: [], pageErrors: [], badResponses: [], steps: [], html: {} };

function watch(page, sink) {
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") sink.console.push({ type: m.type(), text: m.text(), at: page.url() });
  });
  page.on("pageerror", (e) => sink.pageErrors.push({ text: String(e && e.stack || e), at: page.url() }));
  page.on("requestfailed", (r) => sink.badResponses.push({ url: r.url(), failure: r.failure()?.errorText }));
  page.on("response", (r) => {
    if (r.status() >= 400) sink.badResponses.push({ url: r.url(), status: r.status() });
  });
}

async function shot(page, name) {
  const file = path.join(cfg.artifacts, `${name}.png`);
  await page.evaluate(() => window.scrollTo(0, 0));  // the sticky header stays on top
  await page.screenshot({ path: file, fullPage: true });
  // What the page holds, markup and attributes included, for the tests' secret checks.
  out.html[name] = await page.content();
  return file;
}

async function ready(page, name) {
  await page.waitForSelector(`body[data-ready="${name}"]`, { timeout: 15_000 });
  out.steps.push(name);
}

/** Navigates to a hash route and waits for that very route to have rendered. */
async function go(page, hash, name) {
  await page.goto(`${cfg.adminUrl}/${hash}`);
  await page.waitForFunction(([hash, name]) => document.body.dataset.ready === name && document.body.dataset.route === hash,
    [hash, name], { timeout: 15_000 });
  out.steps.push(`${name} ${hash}`);
}

const text = (s) => (s ?? "").replace(/\s+/g, " ").trim();

/** Rows of a table: the row's data attribute, and each `[data-k]` cell's text. */
async function rows(page, selector, key) {
  return page.$$eval(`${selector} tbody tr`, (trs, key) => trs.map((tr) => {
    const cells = {};
    for (const td of tr.querySelectorAll("[data-k]")) cells[td.dataset.k] = td.textContent.replace(/\s+/g, " ").trim();
    return { key: key ? tr.dataset[key] : null, cells, text: tr.textContent.replace(/\s+/g, " ").trim() };
  }), key);
}

const statValue = (page, id) => page.$eval(`#${id} .value`, (e) => e.textContent.trim());

async function usageState(page) {
  return page.evaluate(() => {
    const r = document.querySelector("#usage-results");
    const svg = r.querySelector("#usage-chart svg");
    const series = {};
    for (const tr of r.querySelectorAll("#usage-table tbody tr")) {
      const cells = {};
      for (const td of tr.querySelectorAll("[data-k]")) cells[td.dataset.k] = td.textContent.trim();
      series[tr.dataset.key] = cells;
    }
    const total = {};
    for (const td of r.querySelectorAll("#usage-total [data-k]")) total[td.dataset.k] = td.textContent.trim();
    return {
      query: r.dataset.query,
      api: r.dataset.api,
      chart: svg ? {
        buckets: Number(svg.dataset.buckets), series: Number(svg.dataset.series),
        bars: [...svg.querySelectorAll("rect.bar")].map((b) => ({ series: Number(b.dataset.series), height: Number(b.getAttribute("height")), title: b.querySelector("title").textContent })),
      } : null,
      legend: [...r.querySelectorAll(".legend > span")].map((s) => s.textContent.trim()),
      series, total,
      empty: !!r.querySelector(".empty"),
      error: r.querySelector(".alert")?.textContent ?? null,
    };
  });
}

/** Changes a usage control and waits for the results of exactly that query. */
async function usageChange(page, selector, value) {
  const before = await page.$eval("#usage-results", (r) => r.dataset.query);
  await page.selectOption(selector, value);
  await page.waitForFunction((before) => {
    const r = document.querySelector("#usage-results");
    return document.body.dataset.ready === "usage" && r && r.dataset.query !== before;
  }, before, { timeout: 15_000 });
  return usageState(page);
}

try {
  // ---- a wrong token is refused on the login page (its own context: the 401 is expected)
  {
    const wrong = { console: [], pageErrors: [], badResponses: [] };
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    watch(page, wrong);
    await page.goto(`${cfg.adminUrl}/`);
    await ready(page, "login");
    await page.fill("#token", "not-the-admin-token");
    await page.click("#login-submit");
    await ready(page, "login-refused");
    out.wrongToken = { message: text(await page.textContent("#login-error")), ...wrong };
    await ctx.close();
  }

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  await context.addInitScript((gw) => localStorage.setItem("aigw.gatewayUrl", gw), cfg.gatewayUrl);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  watch(page, out);

  // ---- login
  await page.goto(`${cfg.adminUrl}/`);
  await ready(page, "login");
  await shot(page, "login");
  await page.fill("#token", cfg.token);
  await page.click("#login-submit");

  // ---- home
  await ready(page, "home");
  await page.waitForSelector("#recent[data-loaded]");
  out.home = {
    requests: await statValue(page, "home-requests"),
    spend: await statValue(page, "home-spend"),
    tokens: await statValue(page, "home-tokens"),
    providers: await statValue(page, "home-providers"),
    providersSub: text(await page.textContent("#home-providers .sub")),
    agents: await statValue(page, "home-agents"),
    attention: await page.$$eval("#attention li", (lis) => lis.map((li) => ({
      kind: li.dataset.kind, text: li.querySelector("a").textContent, href: li.querySelector("a").getAttribute("href"),
    }))),
    byProvider: await rows(page, "#home-by-provider", "provider"),
    recent: await page.$$eval("#recent-table tbody tr", (trs) => trs.map((tr) => tr.dataset.requestId)),
  };
  await shot(page, "home");

  // ---- providers
  await page.click('#nav a[data-nav="providers"]');
  await ready(page, "providers");
  out.providers = await rows(page, "#providers-table", "provider");
  out.providers = out.providers.map((r) => ({ ...r, status: r.text.includes("disabled") ? "disabled" : "enabled" }));
  await shot(page, "providers");

  // ---- one provider: strip, connection, models, snippets, test connection
  await page.click(`#providers-table a[href="#/providers/${cfg.provider}"]`);
  await ready(page, "provider");
  const detail = {
    spend: await statValue(page, "p-spend"),
    requests: await statValue(page, "p-requests"),
    tokens: await statValue(page, "p-tokens"),
    sparklines: await page.$$eval("#p-strip svg.spark", (s) => s.length),
    connection: await page.$$eval("#connection dd", (dds) => Object.fromEntries(dds.map((d) => [d.dataset.k, d.textContent.replace(/\s+/g, " ").trim()]))),
    models: await rows(page, "#model-spend-table", "model"),
    prices: await rows(page, "#prices-table", "model"),
    snippets: {},
  };
  for (const tab of await page.$$("#connect .tabs button:not([disabled])")) {
    await tab.click();
    const id = await tab.getAttribute("data-tab");
    detail.snippets[id] = await page.textContent("#snippet");
  }
  detail.disabledTabs = await page.$$eval("#connect .tabs button[disabled]", (bs) => bs.map((b) => b.dataset.tab));
  await page.click('#connect .tabs button[data-tab="curl"]');
  await page.click("#test-button");
  await page.waitForSelector("#test-result[data-outcome]");
  detail.test = {
    outcome: await page.$eval("#test-result", (e) => e.dataset.outcome),
    text: text(await page.textContent("#test-result")),
  };
  out.provider = detail;
  await shot(page, "provider");

  // ---- a provider whose upstream is down: the test fails, clearly
  await go(page, `#/providers/${cfg.failingProvider}`, "provider");
  await page.click("#test-button");
  await page.waitForSelector("#test-result[data-outcome]");
  out.failing = {
    outcome: await page.$eval("#test-result", (e) => e.dataset.outcome),
    text: text(await page.textContent("#test-result")),
  };
  await shot(page, "provider-test-failed");

  // ---- cost & usage: the default view, then filters and groupings
  await page.click('#nav a[data-nav="usage"]');
  await ready(page, "usage");
  const usage = { initial: await usageState(page) };
  await shot(page, "usage");
  usage.byModel = await usageChange(page, "#f-group", "model");
  usage.byModelLocal = await usageChange(page, "#f-provider", cfg.provider);
  usage.tokensLocal = await usageChange(page, "#f-metric", "tokens");
  usage.byTokenType = await usageChange(page, "#f-group", "token_type");
  usage.byAgentLocal = await usageChange(page, "#f-group", "agent");
  usage.hourly = await usageChange(page, "#f-granularity", "hour");
  usage.options = await page.evaluate(() => Object.fromEntries(["f-provider", "f-model", "f-user", "f-agent"].map((id) =>
    [id, [...document.querySelectorAll(`#${id} option`)].map((o) => o.value).filter(Boolean)])));
  usage.byUserAllProviders = await usageChange(page, "#f-provider", "");
  usage.byUser = await usageChange(page, "#f-group", "user");
  await shot(page, "usage-hourly-by-user");

  // CSV export of the current view: a fetch with the token, saved through a Blob.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
  const csvPath = path.join(cfg.artifacts, download.suggestedFilename());
  await download.saveAs(csvPath);
  usage.csv = { filename: download.suggestedFilename(), path: csvPath, api: await page.$eval("#usage-results", (r) => r.dataset.api) };
  out.usage = usage;

  // Back to a daily cost view by provider for the screenshot set.
  await go(page, "#/usage?group_by=model&metric=cost", "usage");
  await shot(page, "usage-by-model");

  // ---- budgets
  await page.click('#nav a[data-nav="budgets"]');
  await ready(page, "budgets");
  out.budgets = await rows(page, "#budgets-table", "agent");
  await shot(page, "budgets");

  // ---- MCP tools
  await page.click('#nav a[data-nav="tools"]');
  await ready(page, "tools");
  out.mcpServers = await rows(page, "#mcp-servers-table", "server");
  out.toolCalls = await rows(page, "#tool-calls-table", "call");
  await shot(page, "tools");
  // ---- performance: the store's percentiles per provider and model
  await page.click('#nav a[data-nav="performance"]');
  await ready(page, "performance");
  out.performance = {
    providers: await rows(page, "#perf-provider-table", "provider"),
    models: await rows(page, "#perf-model-table", "model"),
    api: { providers: await page.$eval("#perf-providers", (e) => e.dataset.api), models: await page.$eval("#perf-models", (e) => e.dataset.api) },
  };
  await shot(page, "performance");

  // ---- requests: the list, a status filter through the form, one logged request
  await page.click('#nav a[data-nav="requests"]');
  await ready(page, "requests");
  out.requests = { rows: await rows(page, "#requests-table", "request"),
    api: await page.$eval("#requests-results", (e) => e.dataset.api) };
  await shot(page, "requests");
  await page.selectOption("#r-provider", cfg.provider);
  await page.selectOption("#r-status", "2xx");
  await page.click("#r-apply");
  await page.waitForFunction(() => document.body.dataset.ready === "requests" && location.hash.includes("status=2xx"),
    null, { timeout: 15_000 });
  out.requests.filtered = { rows: await rows(page, "#requests-table", "request"),
    api: await page.$eval("#requests-results", (e) => e.dataset.api) };
  await page.goBack();
  await ready(page, "requests");
  const logged = await page.$('#requests-table tr:has([data-k="logged"] .badge) a');
  if (logged) {
    await logged.click();
    await ready(page, "request");
    out.request = await page.evaluate(() => ({
      id: location.hash.split("/").pop(),
      requestBody: document.querySelector("#request-body pre")?.textContent,
      responseBody: document.querySelector("#response-body pre")?.textContent,
      fields: Object.fromEntries([...document.querySelectorAll("dd[data-k]")].map((d) => [d.dataset.k, d.textContent])),
    }));
    await shot(page, "request");
  }
  await page.click('#nav a[data-nav="budgets"]');
  await ready(page, "budgets");

  // ---- the token survives a reload in this tab; signing out forgets it
  await page.reload();
  await ready(page, "budgets");
  await page.click("#signout");
  await ready(page, "login");
  out.afterSignOut = await page.evaluate(() => sessionStorage.getItem("aigw.adminToken"));
  await context.close();
} catch (e) {
  out.failure = String(e && e.stack || e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
