// Differential check of the session cookie against express-session's own packages, without
// servers: (1) which session id each of thousands of adversarial Cookie headers names, as
// express-session reads it (interop/cookies/cases.mjs) and as honeymoon_session's core reads it
// (interop/cookies/check.lua); (2) honeymoon_session's Set-Cookie lines against what the
// `cookie` module serializes for the same attributes, and what Node reads back from them.
// Run by interop/run.sh with `node --test`; COOKIES_LUA names the interpreter (luajit by
// default) and HS_CPATH where its module is (build/luajit/?.so).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = join(here, "..");
const require = createRequire(join(here, "node/node_modules/express-session/"));
const session = require("express-session");
const cookie = require("cookie");
const signature = require("cookie-signature");

const LUA = process.env.COOKIES_LUA || "luajit";
const CPATH = process.env.HS_CPATH || join(root, "build/luajit/?.so");
const lua = (script, file) =>
  execFileSync(LUA, [join(here, "cookies", script), file], {
    cwd: root, env: { ...process.env, HS_CPATH: CPATH }, encoding: "utf8", maxBuffer: 64 << 20,
  });

const tmp = mkdtempSync(join(tmpdir(), "hs-cookies-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

test("every adversarial Cookie header names the session express-session reads, or differs by a documented rule", () => {
  const casesFile = join(tmp, "cases.txt");
  const cases = 6000;
  const gen = spawnSync(process.execPath, [join(here, "cookies", "cases.mjs")], {
    env: { ...process.env, COOKIE_CASES: String(cases) }, encoding: "utf8", maxBuffer: 64 << 20,
  });
  assert.equal(gen.status, 0, `cases.mjs failed: ${gen.stderr}`);
  writeFileSync(casesFile, gen.stdout);
  // The generator's last stderr line: how many cases read the same session, how many differ by
  // each documented rule.
  const summary = JSON.parse(gen.stderr.trim().split("\n").pop());
  let out;
  try {
    out = lua("check.lua", casesFile);
  } catch (e) {
    out = String(e.stdout || "") + String(e.stderr || "");
  }
  const failures = out.split("\n").filter((l) => l.startsWith("not ok"));
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} headers read differently:`);
  assert.match(out, new RegExp(`^cookies: ${cases} passed, 0 failed$`, "m"));
  // The generator reaches each kind of case: most read the same session, and some differ by
  // each documented rule (else the check would not be looking at them).
  assert.ok(summary.same > cases / 2, JSON.stringify(summary));
  assert.ok(summary.laterDuplicate > 50, JSON.stringify(summary));
  assert.ok(summary.idShape > 50, JSON.stringify(summary));
});

// Configurations for the Set-Cookie comparison: hs.core options (the Lua side adds a store),
// whether the request came over HTTPS, a per-session maxAge (ms), and whether to destroy the
// session afterwards (the clearing line).
const CONFIGS = [
  { opts: { secret: "s1" } },
  { opts: { secret: ["new", "old"], name: "sid", cookie: { sameSite: "Strict", domain: "example.com", path: "/app" } } },
  { opts: { secret: "s1", cookie: { sameSite: false, httpOnly: false, maxAge: 1 } } },
  { opts: { secret: "s1", name: "__Host-sid", cookie: { secure: true, sameSite: "None", partitioned: true, priority: "high" } } },
  { opts: { secret: "s1", cookie: { priority: "low", maxAge: false } } },
  { opts: { secret: "s1", cookie: { priority: "Medium", secure: "auto" } }, https: true },
  { opts: { secret: "s1", cookie: { priority: "Medium", secure: "auto" } }, https: false },
  { opts: { secret: "sécret ü", ttl: 3153600000 } },
  { opts: { secret: "s1", ttl: 600 }, maxAgeMs: 7200000 },
  { opts: { secret: "s1", cookie: { secure: true, domain: "sub.example.com", sameSite: "Lax" } }, destroy: true },
  { opts: { secret: ["k1", "k2"], cookie: { maxAge: false, priority: "HIGH" } }, destroy: true },
];

// The attributes a configuration asks for, as the `cookie` module's serialize options (Max-Age
// in seconds; undefined for a browser-session cookie).
function attributes(c) {
  const o = c.opts.cookie || {};
  const maxAge = c.maxAgeMs !== undefined ? c.maxAgeMs / 1000
    : o.maxAge === false ? undefined : o.maxAge ?? c.opts.ttl ?? 86400;
  return {
    path: o.path ?? "/", domain: o.domain, httpOnly: o.httpOnly ?? true,
    secure: o.secure === "auto" ? c.https === true : o.secure === true,
    // Ours defaults to Lax (the spec's default); express-session to none.
    sameSite: o.sameSite === undefined ? "Lax" : o.sameSite || undefined,
    partitioned: o.partitioned, priority: o.priority, maxAge,
  };
}

const split = (line) => {
  const [pair, ...attrs] = line.split("; ");
  return { pair, attrs };
};
const without = (attrs, ...names) => attrs.filter((a) => !names.some((n) => a.startsWith(n))).sort();
const secretsOf = (c) => [].concat(c.opts.secret);
const nameOf = (c) => c.opts.name || "honeymoon.sid"; // ours (the spec's); express-session's is connect.sid

// express-session's reading of a Cookie header holding `pair`: the id, or undefined.
function expressId(pair, c) {
  const raw = cookie.parse(pair)[nameOf(c)];
  if (!raw || raw.slice(0, 2) !== "s:") return undefined;
  for (const secret of secretsOf(c)) {
    const id = signature.unsign(raw.slice(2), secret);
    if (id !== false) return id;
  }
  return undefined;
}

test("Set-Cookie lines are what the cookie module serializes for the same attributes, and Node reads them back", () => {
  const file = join(tmp, "configs.json");
  writeFileSync(file, JSON.stringify(CONFIGS));
  const results = lua("setcookie.lua", file).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(results.length, CONFIGS.length + CONFIGS.filter((c) => c.destroy).length);
  for (const r of results) {
    const c = CONFIGS[r.i - 1];
    const name = nameOf(c);
    const a = attributes(c);
    const where = `config ${r.i} (${JSON.stringify(c)})`;
    if (r.clearing !== undefined) {
      // express-session sends no line on destroy; ours clears the cookie, in the cookie
      // module's form of an expired empty cookie, and Node reads no session from it.
      const want = cookie.serialize(name, "", { ...a, maxAge: 0, expires: new Date(0) });
      const got = split(r.clearing), exp = split(want);
      assert.equal(got.pair, exp.pair, where);
      assert.deepEqual([...got.attrs].sort(), [...exp.attrs].sort(), `${where}: ${r.clearing} vs ${want}`);
      assert.equal(expressId(got.pair, c), undefined, where);
      continue;
    }
    const got = split(r.line);
    const expiresText = got.attrs.find((x) => x.startsWith("Expires="))?.slice("Expires=".length);
    let expires;
    if (a.maxAge === undefined) {
      assert.equal(expiresText, undefined, `${where}: a browser-session cookie has no Expires: ${r.line}`);
    } else {
      assert.ok(expiresText, `${where}: no Expires in ${r.line}`);
      expires = new Date(expiresText);
      // Written as JavaScript's toUTCString writes it (IMF-fixdate), and a.maxAge from now.
      assert.equal(expires.toUTCString(), expiresText, where);
      assert.ok(expires.getTime() >= r.t0 + a.maxAge * 1000 && expires.getTime() <= r.t1 + a.maxAge * 1000,
        `${where}: Expires ${expiresText} is not ${a.maxAge} s after the commit (${r.t0}..${r.t1})`);
    }
    // The value: express-session's signed value under the first secret, URL-encoded as the
    // cookie module encodes it; Node reads our id back from it.
    const want = cookie.serialize(name, "s:" + signature.sign(r.id, secretsOf(c)[0]), { ...a, expires });
    const exp = split(want);
    assert.equal(got.pair, exp.pair, where);
    assert.equal(expressId(got.pair, c), r.id, where);
    // The same attributes, names and values spelled alike (the order differs: the cookie
    // module writes Max-Age first and Domain before Path).
    assert.deepEqual([...got.attrs].sort(), [...exp.attrs].sort(), `${where}: ${r.line} vs ${want}`);
    // express-session's own Cookie writes the same attributes but Max-Age (it sends Expires
    // only; ours sends both, README "Sessions").
    const own = new session.Cookie({
      path: a.path, domain: a.domain, httpOnly: a.httpOnly, secure: a.secure, sameSite: a.sameSite,
      partitioned: a.partitioned, priority: a.priority, maxAge: a.maxAge === undefined ? null : a.maxAge * 1000,
    }).serialize(name, "v");
    assert.deepEqual(without(got.attrs, "Max-Age=", "Expires="), without(split(own).attrs, "Max-Age=", "Expires="),
      `${where}: ${r.line} vs express-session's ${own}`);
    assert.equal(split(own).attrs.some((x) => x.startsWith("Expires=")), expires !== undefined, `${where}: ${own}`);
  }
});
