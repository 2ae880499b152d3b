// The demo (examples/demo) in a real browser: Debian's chromium driven by playwright-core.
// Run by scripts/e2e.sh, which starts the demo on lua-http and under nginx and passes
//   E2E_SERVERS="lua-http=http://127.0.0.1:P1/,nginx=http://127.0.0.1:P2/"
// (default: lua-http=http://127.0.0.1:3000/, i.e. a running `make demo`).
// Each server gets a fresh browser profile; the steps run in order and share one page.
// Under nginx (a server named "nginx...") the demo runs two workers sharing their sessions in a
// lua_shared_dict, and every response names its worker (X-Worker-Pid): one more step checks
// that both workers serve the browser's session logged in.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const COOKIE = "app.sid";
// Screenshots: the dashboard's, and the page of every step that failed (with its HTML).
// scripts/e2e.sh sets E2E_ARTIFACTS (artifacts/e2e/ under scripts/test.sh).
const ARTIFACTS = process.env.E2E_ARTIFACTS ??
  path.join(path.dirname(fileURLToPath(import.meta.url)), "artifacts");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const servers = (process.env.E2E_SERVERS ?? "lua-http=http://127.0.0.1:3000/")
  .split(",").filter(Boolean).map((entry) => {
    const [name, url] = entry.split("=");
    return [name, new URL(url)];
  });

for (const [name, base] of servers) {
  describe(`demo on ${name}`, { timeout: 120_000 }, () => {
    let context, page, profile;
    const url = (p) => new URL(p, base).href;
    const sessionCookie = async () => (await context.cookies(base.href)).find((c) => c.name === COOKIE);
    const flashes = (kind) => page.locator(`[data-flash="${kind}"]`);
    // Submit the login form and wait for the page the redirect lands on.
    const logIn = async (email, password, landing) => {
      await page.fill('input[name="email"]', email);
      await page.fill('input[name="password"]', password);
      await Promise.all([
        page.waitForResponse((r) => r.url() === url(landing) && r.request().method() === "GET"),
        page.click('button[type="submit"]'),
      ]);
      await page.waitForLoadState("load");
    };
    let idBeforeLogin;
    // A step is a test that, when it fails, leaves the page it failed on in ARTIFACTS.
    const step = (title, fn) => test(title, async (t) => {
      try {
        await fn(t);
      } catch (err) {
        const file = `failed-${name}-${title.replace(/[^A-Za-z0-9]+/g, "-").slice(0, 60)}`;
        try {
          fs.mkdirSync(ARTIFACTS, { recursive: true });
          await page.screenshot({ path: path.join(ARTIFACTS, `${file}.png`), fullPage: true });
          fs.writeFileSync(path.join(ARTIFACTS, `${file}.html`), `<!-- ${page.url()} -->\n${await page.content()}`);
        } catch {
          // No page to keep (the browser did not start): the error itself says why.
        }
        throw err;
      }
    });

    before(async () => {
      profile = fs.mkdtempSync(path.join(os.tmpdir(), "hs-e2e-profile-"));
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true, args: ARGS,
        viewport: { width: 900, height: 700 },
      });
      page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(10_000);
    });

    after(async () => {
      await context?.close();
      if (profile) fs.rmSync(profile, { recursive: true, force: true });
    });

    step("the dashboard sends a visitor without a session to the login page", async () => {
      await page.goto(url("/dashboard"));
      assert.equal(page.url(), url("/login"));
      assert.equal(await page.locator("h1").textContent(), "Log in");
      assert.equal(await sessionCookie(), undefined, "an untouched visitor gets no cookie");
    });

    step("a wrong password shows the error flash once", async () => {
      await logIn("alice@example.com", "not-the-password", "/login");
      assert.equal(page.url(), url("/login"));
      assert.equal(await flashes("error").textContent(), "Invalid email or password");
      const cookie = await sessionCookie();
      assert.ok(cookie, "the flash is kept in a session, so a cookie was set");
      idBeforeLogin = cookie.value;
      await page.reload();
      assert.equal(await page.locator("h1").textContent(), "Log in");
      assert.equal(await flashes("error").count(), 0, "the flash is gone after it was shown");
    });

    step("logging in shows the welcome flash once under a new session id", async () => {
      await logIn("alice@example.com", "wonderland", "/dashboard");
      assert.equal(page.url(), url("/dashboard"));
      assert.equal(await flashes("success").textContent(), "Welcome back!");
      assert.equal(await page.locator("#username").textContent(), "Alice");
      const cookie = await sessionCookie();
      assert.notEqual(cookie.value, idBeforeLogin, "regenerate() gives a new id at login");
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });
    });

    step("the session cookie is HttpOnly, SameSite=Lax, path / and lasts the ttl", async () => {
      const cookie = await sessionCookie();
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, "Lax");
      assert.equal(cookie.path, "/");
      assert.equal(cookie.secure, false, "plain http: cookie.secure = \"auto\" leaves it off");
      assert.match(cookie.value, /^s%3A[A-Za-z0-9_-]{32}\.[A-Za-z0-9%]+$/);
      const days = (cookie.expires - Date.now() / 1000) / 86400;
      assert.ok(days > 6.9 && days <= 7.01, `expires in ${days.toFixed(2)} days, ttl is 7`);
      const visible = await page.evaluate(() => document.cookie);
      assert.ok(!visible.includes(COOKIE), "scripts cannot read the session cookie");
    });

    step("a reload stays logged in and the welcome flash is gone", async () => {
      await page.reload();
      assert.equal(page.url(), url("/dashboard"));
      assert.equal(await page.locator("#username").textContent(), "Alice");
      assert.equal(await flashes("success").count(), 0);
      assert.equal(await flashes("error").count(), 0);
    });

    if (name.startsWith("nginx")) step("both nginx workers serve the session logged in", async (t) => {
      // The browser keeps its connection, so one worker served the pages so far. Requests with
      // the browser's cookies on new connections reach the other worker too (reuseport).
      const seen = new Map();
      for (let i = 0; i < 40 && seen.size < 2; i++) {
        const r = await context.request.get(url("/dashboard"), { headers: { connection: "close" }, maxRedirects: 0 });
        assert.equal(r.status(), 200, `request ${i + 1} was not served logged in (HTTP ${r.status()})`);
        assert.match(await r.text(), /Signed in as <strong id="username">Alice<\/strong>/);
        const pid = r.headers()["x-worker-pid"];
        assert.match(pid ?? "", /^\d+$/, "the response names its worker (X-Worker-Pid)");
        seen.set(pid, (seen.get(pid) ?? 0) + 1);
      }
      const served = [...seen].map(([pid, n]) => `${pid}: ${n}`).join(", ");
      assert.equal(seen.size, 2, `served only by worker(s) ${served}`);
      t.diagnostic(`requests per worker pid: ${served}`);
      await page.reload();
      assert.equal(await page.locator("#username").textContent(), "Alice", "the browser is still logged in");
    });

    step("the theme set with fetch() is kept in the session", async () => {
      await Promise.all([
        page.waitForResponse((r) => r.url() === url("/settings/theme") && r.status() === 200),
        page.click('button[data-theme="dark"]'),
      ]);
      await page.reload();
      assert.equal(await page.locator("#theme").textContent(), "dark");
      assert.equal(await page.locator("body").getAttribute("class"), "dark");
    });

    step("logging out ends the session and returns to the login page", async () => {
      await Promise.all([
        page.waitForResponse((r) => r.url() === url("/login") && r.request().method() === "GET"),
        page.click("#logout"),
      ]);
      await page.waitForLoadState("load");
      assert.equal(page.url(), url("/login"));
      assert.equal(await sessionCookie(), undefined, "destroy() clears the cookie");
      await page.goto(url("/dashboard"));
      assert.equal(page.url(), url("/login"), "the dashboard is closed again");
    });
  });
}
