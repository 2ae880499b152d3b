// The demo (examples/demo) in a real browser: Debian's chromium driven by playwright-core.
// Run by scripts/e2e.sh, which starts the demo on lua-http and under nginx and passes
//   E2E_SERVERS="lua-http=http://127.0.0.1:P1/,nginx=http://127.0.0.1:P2/"
// (default: lua-http=http://127.0.0.1:3000/, i.e. a running `make demo`).
// Each server gets a fresh browser profile; the steps run in order and share one page.
// Under nginx (a server named "nginx...") the demo runs two workers sharing their sessions in a
// lua_shared_dict, and every response names its worker (X-Worker-Pid): one more step checks
// that both workers serve the browser's session logged in.
// Then two more browser contexts (two cookie jars, as two browsers) log in as the same user,
// one with "Remember me" and one without: the cookies' lifetimes, the "Your sessions" page
// listing both, and "Log out other sessions" logging the other one out.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const COOKIE = "app.sid";
const DAY = 86400;
// Days from now until a cookie expires (playwright: seconds since the epoch; -1 for a
// browser-session cookie).
const daysLeft = (cookie) => (cookie.expires - Date.now() / 1000) / DAY;
// The session id inside a signed cookie value: "s%3A<id>.<signature>".
const idOf = (cookie) => decodeURIComponent(cookie.value).match(/^s:([^.]+)\./)[1];
// Screenshots: the dashboard's, "Your sessions", and the page of every step that failed (with its HTML).
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
    // remember: tick "Remember me" first. The page is the shared one unless another is given.
    const logIn = async (email, password, landing, { remember = false, on = page } = {}) => {
      await on.fill('input[name="email"]', email);
      await on.fill('input[name="password"]', password);
      if (remember) await on.check('input[name="remember"]');
      await Promise.all([
        on.waitForResponse((r) => r.url() === url(landing) && r.request().method() === "GET"),
        on.click('button[type="submit"]'),
      ]);
      await on.waitForLoadState("load");
    };
    let idBeforeLogin, cookieBeforeLogin;
    // The two-browser steps: one browser, two contexts (separate cookie jars) A and B.
    let browser, contextA, contextB, pageA, pageB;
    const cookieIn = async (ctx) => (await ctx.cookies(base.href)).find((c) => c.name === COOKIE);
    // A step is a test that, when it fails, leaves the page it failed on in ARTIFACTS.
    const step = (title, fn) => test(title, async (t) => {
      try {
        await fn(t);
      } catch (err) {
        const file = `failed-${name}-${title.replace(/[^A-Za-z0-9]+/g, "-").slice(0, 60)}`;
        // The shared page, and the two-browser steps' pages once they exist.
        for (const [suffix, p] of [["", page], ["-A", pageA], ["-B", pageB]]) {
          if (!p) continue;
          try {
            fs.mkdirSync(ARTIFACTS, { recursive: true });
            await p.screenshot({ path: path.join(ARTIFACTS, `${file}${suffix}.png`), fullPage: true });
            fs.writeFileSync(path.join(ARTIFACTS, `${file}${suffix}.html`), `<!-- ${p.url()} -->\n${await p.content()}`);
          } catch {
            // No page to keep (the browser did not start): the error itself says why.
          }
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
      await browser?.close();
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
      cookieBeforeLogin = cookie;
      await page.reload();
      assert.equal(await page.locator("h1").textContent(), "Log in");
      assert.equal(await flashes("error").count(), 0, "the flash is gone after it was shown");
    });

    step("logging in (with Remember me) shows the welcome flash once under a new session id", async () => {
      await logIn("alice@example.com", "wonderland", "/dashboard", { remember: true });
      assert.equal(page.url(), url("/dashboard"));
      assert.equal(await flashes("success").textContent(), "Welcome back!");
      assert.equal(await page.locator("#username").textContent(), "Alice");
      const cookie = await sessionCookie();
      assert.notEqual(cookie.value, idBeforeLogin, "regenerate() gives a new id at login");
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });
    });

    step("the session cookie is HttpOnly, SameSite=Lax, path / and lasts the ttl (30 days remembered)", async () => {
      const before = daysLeft(cookieBeforeLogin);
      assert.ok(before > 6.9 && before <= 7.01, `before login: expires in ${before.toFixed(2)} days, ttl is 7`);
      const cookie = await sessionCookie();
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, "Lax");
      assert.equal(cookie.path, "/");
      assert.equal(cookie.secure, false, "plain http: cookie.secure = \"auto\" leaves it off");
      assert.match(cookie.value, /^s%3A[A-Za-z0-9_-]{32}\.[A-Za-z0-9%]+$/);
      const days = (cookie.expires - Date.now() / 1000) / 86400;
      assert.ok(days > 29.9 && days <= 30.01, `after login with Remember me: expires in ${days.toFixed(2)} days, not 30`);
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

    step("two browsers log in as the same user: Remember me lasts 30 days, without it a browser-session cookie", async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
      for (const which of ["A", "B"]) {
        const ctx = await browser.newContext({ viewport: { width: 900, height: 700 } });
        const p = await ctx.newPage();
        p.setDefaultTimeout(10_000);
        await p.goto(url("/login"));
        await logIn("alice@example.com", "wonderland", "/dashboard", { remember: which === "A", on: p });
        assert.equal(p.url(), url("/dashboard"), `browser ${which} is logged in`);
        assert.equal(await p.locator("#username").textContent(), "Alice");
        if (which === "A") [contextA, pageA] = [ctx, p];
        else [contextB, pageB] = [ctx, p];
      }
      const a = await cookieIn(contextA), b = await cookieIn(contextB);
      assert.ok(daysLeft(a) > 29.9 && daysLeft(a) <= 30.01, `A (Remember me): expires in ${daysLeft(a).toFixed(2)} days, not 30`);
      assert.equal(b.expires, -1, `B (no Remember me): a browser-session cookie, not one expiring at ${b.expires}`);
      assert.notEqual(idOf(a), idOf(b), "two sessions");
    });

    step("rolling refreshes each cookie with its own lifetime", async () => {
      await pageA.reload();
      await pageB.reload();
      assert.equal(await pageA.locator("#username").textContent(), "Alice");
      assert.equal(await pageB.locator("#username").textContent(), "Alice");
      const a = await cookieIn(contextA), b = await cookieIn(contextB);
      assert.ok(daysLeft(a) > 29.9 && daysLeft(a) <= 30.01, `A after a request: expires in ${daysLeft(a).toFixed(2)} days, not 30`);
      assert.equal(b.expires, -1, "B after a request: still a browser-session cookie");
    });

    step("Your sessions lists both browsers' sessions, this one marked, no full ids", async () => {
      const idA = idOf(await cookieIn(contextA)), idB = idOf(await cookieIn(contextB));
      await Promise.all([
        pageA.waitForResponse((r) => r.url() === url("/sessions") && r.status() === 200),
        pageA.click("#sessions-link"),
      ]);
      await pageA.waitForLoadState("load");
      assert.equal(await pageA.locator("h1").textContent(), "Your sessions");
      const rows = pageA.locator("#sessions [data-session]");
      assert.ok(await rows.count() >= 2, `${await rows.count()} session(s) listed, not both`);
      assert.equal(await pageA.locator("#sessions [data-current]").count(), 1, "one session is marked current");
      assert.match(await pageA.locator("#sessions [data-current]").textContent(), /This browser/);
      const prefixes = await pageA.locator("#sessions [data-id-prefix]").allTextContents();
      assert.ok(prefixes.includes(idB.slice(0, 6)), `B's session (${idB.slice(0, 6)}…) is not among ${prefixes.join(", ")}`);
      assert.ok(prefixes.every((p) => p.length === 6), `ids shown: ${prefixes.join(", ")}: 6 characters each`);
      assert.ok(!prefixes.includes(idA.slice(0, 6)), "the current session is marked, not listed by id");
      for (const time of await pageA.locator("#sessions time").allTextContents()) {
        assert.match(time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/, "each session shows when it was last seen");
      }
      const html = await pageA.content();
      assert.ok(!html.includes(idA) && !html.includes(idB), "no full session id in the page");
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await pageA.screenshot({ path: path.join(ARTIFACTS, `sessions-${name}.png`), fullPage: true });
    });

    step("Log out other sessions logs the other browser out and keeps this one", async () => {
      const listed = await pageA.locator("#sessions [data-session]").count();
      await Promise.all([
        pageA.waitForResponse((r) => r.url() === url("/sessions") && r.request().method() === "GET"),
        pageA.click("#logout-others"),
      ]);
      await pageA.waitForLoadState("load");
      assert.equal(pageA.url(), url("/sessions"));
      const others = listed - 1;
      assert.equal(await pageA.locator('[data-flash="success"]').textContent(),
        `Logged out ${others} other session${others === 1 ? "" : "s"}.`);
      assert.equal(await pageA.locator("#sessions [data-session]").count(), 1, "only this session is left");
      assert.equal(await pageA.locator("#sessions [data-current]").count(), 1);
      assert.equal(await pageA.locator("#logout-others").count(), 0, "no other sessions, no button");

      await pageB.goto(url("/dashboard"));
      assert.equal(pageB.url(), url("/login"), "B's next request is logged out");
      // On new connections too (under nginx: whichever worker answers).
      for (let i = 0; i < 6; i++) {
        const r = await contextB.request.get(url("/dashboard"), { headers: { connection: "close" }, maxRedirects: 0 });
        assert.equal(r.status(), 303, `B's request ${i + 1}: HTTP ${r.status()}, not a redirect to /login`);
        assert.equal(new URL(r.headers().location, base).href, url("/login"));
      }
      await pageA.goto(url("/dashboard"));
      assert.equal(pageA.url(), url("/dashboard"), "A stays logged in");
      assert.equal(await pageA.locator("#username").textContent(), "Alice");
    });
  });
}
