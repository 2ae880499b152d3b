// Interop test: honeymoon_session (Lua, interop/lua/routes.lua, served by lua-http or by nginx)
// and express-session + connect-redis (Node, interop/node/app.mjs) share sessions through one
// Redis. Started by interop/run.sh, which sets NODE_URL, LUA_URL and REDIS_PORT; run with
// `node --test --test-reporter=tap`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";

const NODE = process.env.NODE_URL;
const LUA = process.env.LUA_URL;
const REDIS_PORT = process.env.REDIS_PORT;
if (!NODE || !LUA || !REDIS_PORT) {
  throw new Error("NODE_URL, LUA_URL and REDIS_PORT must be set: run interop/run.sh");
}
const SECRET = "interop-secret";
const TTL = 86400; // both apps: a day, for the store entry and the cookie

function redis(...args) {
  return execFileSync("redis-cli", ["-h", "127.0.0.1", "-p", REDIS_PORT, "--raw", ...args], {
    encoding: "utf8",
  }).replace(/\n$/, "");
}

// The signed cookie value for an id, as express-session (cookie-signature) computes it.
function sign(id, secret = SECRET) {
  const sig = createHmac("sha256", secret).update(id).digest("base64").replace(/=+$/, "");
  return `s:${id}.${sig}`;
}

// "s:<id>.<sig>" (decoded) -> id
function idOf(value) {
  const m = /^s:([^.]+)\.(.+)$/.exec(value);
  assert.ok(m, `not a signed session cookie: ${value}`);
  return m[1];
}

// A one-cookie jar: holds the connect.sid value (URL-encoded, as sent in Set-Cookie).
class Jar {
  constructor(raw) {
    this.raw = raw; // encoded value, or undefined
    this.lastSet = undefined; // the encoded value the last response set, if any
  }
  get value() {
    return this.raw === undefined ? undefined : decodeURIComponent(this.raw);
  }
  get id() {
    return idOf(this.value);
  }
  static signed(value) {
    return new Jar(encodeURIComponent(value));
  }
}

// GET base+path with the jar's cookie; updates the jar from Set-Cookie; returns { status, body, setCookie }.
// With `json`, a POST of that body instead.
async function get(base, path, jar, json) {
  const headers = {};
  if (jar && jar.raw !== undefined) headers.cookie = `connect.sid=${jar.raw}`;
  const init = { headers, signal: AbortSignal.timeout(5000) };
  if (json !== undefined) {
    init.method = "POST";
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  const lines = res.headers.getSetCookie().filter((l) => l.startsWith("connect.sid="));
  assert.ok(lines.length <= 1, `more than one connect.sid Set-Cookie: ${lines}`);
  const line = lines[0];
  if (jar) {
    jar.lastSet = undefined;
    if (line) {
      const raw = line.slice("connect.sid=".length).split(";")[0];
      const clearing =
        raw === "" || /;\s*max-age=0/i.test(line) || /expires=thu, 01 jan 1970/i.test(line);
      jar.raw = clearing ? undefined : raw;
      jar.lastSet = clearing ? undefined : raw;
    }
  }
  assert.equal(res.status, 200, `${base}${path}: ${res.status} ${text}`);
  return { body: JSON.parse(text), setCookie: line };
}

const stored = (id) => {
  const raw = redis("GET", `sess:${id}`);
  return raw === "" ? null : JSON.parse(raw);
};

test("(a) a session Node creates is read and changed by Lua, then by Node again", async () => {
  const jar = new Jar();
  let r = await get(NODE, "/visit", jar);
  assert.equal(r.body.node_visits, 1);
  assert.ok(jar.raw, "Node set a session cookie");
  const id = jar.id;

  r = await get(LUA, "/visit", jar);
  assert.deepEqual(r.body, { node_visits: 1, lua_visits: 1 });
  assert.equal(jar.id, id, "Lua kept the id");

  r = await get(NODE, "/visit", jar);
  assert.equal(r.body.lua_visits, 1);
  assert.equal(r.body.node_visits, 2);
  assert.equal(jar.id, id);

  r = await get(LUA, "/show", jar);
  assert.deepEqual(r.body, { node_visits: 2, lua_visits: 1 });
  const s = stored(id);
  assert.equal(s.node_visits, 2);
  assert.equal(s.lua_visits, 1);
});

test("(b) a session Lua creates is read and changed by Node, then by Lua again", async () => {
  const jar = new Jar();
  let r = await get(LUA, "/visit", jar);
  assert.deepEqual(r.body, { lua_visits: 1 });
  assert.ok(jar.raw, "Lua set a session cookie");
  const id = jar.id;

  r = await get(NODE, "/visit", jar);
  assert.equal(r.body.lua_visits, 1);
  assert.equal(r.body.node_visits, 1);
  assert.equal(r.body.cookie.originalMaxAge, TTL * 1000, "Node reads Lua's cookie object");
  assert.equal(jar.id, id, "Node kept the id");

  r = await get(LUA, "/visit", jar);
  assert.deepEqual(r.body, { lua_visits: 2, node_visits: 1 });

  r = await get(NODE, "/show", jar);
  assert.equal(r.body.lua_visits, 2);
  assert.equal(r.body.node_visits, 1);
});

test("(c) a key only Node knows (passport with an empty array) survives a Lua write", async () => {
  const jar = new Jar();
  let r = await get(NODE, "/passport", jar);
  assert.deepEqual(r.body.passport, { user: "u-123", roles: [] });
  const id = jar.id;
  assert.match(redis("GET", `sess:${id}`), /"roles":\[\]/);

  r = await get(LUA, "/visit", jar);
  assert.equal(r.body.lua_visits, 1);
  assert.equal(r.body.passport.user, "u-123", "Lua sees the passport");

  const raw = redis("GET", `sess:${id}`);
  assert.match(raw, /"roles":\[\]/, `roles is still [] in Redis: ${raw}`);
  assert.deepEqual(JSON.parse(raw).passport, { user: "u-123", roles: [] });

  r = await get(NODE, "/show", jar);
  assert.deepEqual(r.body.passport, { user: "u-123", roles: [] });
  assert.ok(Array.isArray(r.body.passport.roles), "roles is still an array");
  assert.equal(r.body.lua_visits, 1);

  // Node writes again (its whole session, from what Lua left): still intact.
  r = await get(NODE, "/visit", jar);
  assert.deepEqual(r.body.passport, { user: "u-123", roles: [] });
  assert.equal(r.body.lua_visits, 1);
  assert.match(redis("GET", `sess:${id}`), /"roles":\[\]/);
});

test("(d) both sign cookies identically; each accepts the other's and rejects bad signatures", async (t) => {
  await t.test("Lua's cookie is express-session's signature, and Node re-sends it unchanged", async () => {
    const jar = new Jar();
    await get(LUA, "/visit", jar);
    const luaValue = jar.lastSet;
    assert.equal(decodeURIComponent(luaValue), sign(jar.id));
    assert.equal(luaValue, encodeURIComponent(sign(jar.id)), "URL-encoded as express-session does");

    const r = await get(NODE, "/visit", jar);
    assert.equal(r.body.lua_visits, 1, "Node accepted Lua's cookie");
    assert.equal(jar.lastSet, luaValue, "Node's Set-Cookie value equals Lua's");
  });

  await t.test("Node's cookie is accepted by Lua, which re-sends it unchanged", async () => {
    const jar = new Jar();
    await get(NODE, "/visit", jar);
    const nodeValue = jar.lastSet;
    assert.equal(decodeURIComponent(nodeValue), sign(jar.id));

    const r = await get(LUA, "/visit", jar);
    assert.equal(r.body.node_visits, 1, "Lua accepted Node's cookie");
    assert.equal(jar.lastSet, nodeValue, "Lua's Set-Cookie value equals Node's");
  });

  await t.test("a cookie this test signs itself is accepted by both", async () => {
    const jar = new Jar();
    await get(NODE, "/visit", jar);
    const id = jar.id;
    const mine = Jar.signed(sign(id));
    assert.equal((await get(LUA, "/show", mine)).body.node_visits, 1);
    assert.equal((await get(NODE, "/show", mine)).body.node_visits, 1);
  });

  await t.test("wrong signature, wrong secret, unsigned: both start a fresh session", async () => {
    const jar = new Jar();
    await get(NODE, "/visit", jar);
    await get(LUA, "/visit", jar);
    const id = jar.id;
    const good = jar.value;
    const sig = good.slice(good.indexOf(".") + 1);
    const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
    const bad = [
      ["flipped signature", Jar.signed(`s:${id}.${flipped}`)],
      ["other secret", Jar.signed(sign(id, "not-the-secret"))],
      ["unsigned s:id", Jar.signed(`s:${id}`)],
      ["bare id", Jar.signed(id)],
    ];
    for (const [what, badJar] of bad) {
      for (const [app, base] of [["Lua", LUA], ["Node", NODE]]) {
        const show = await get(base, "/show", new Jar(badJar.raw));
        assert.equal(show.body.node_visits, undefined, `${app}, ${what}: fresh session`);
        assert.equal(show.body.lua_visits, undefined, `${app}, ${what}: fresh session`);
        assert.equal(show.setCookie, undefined, `${app}, ${what}: untouched fresh session sets no cookie`);

        const probe = new Jar(badJar.raw);
        const visit = await get(base, "/visit", probe);
        const key = app === "Lua" ? "lua_visits" : "node_visits";
        assert.equal(visit.body[key], 1, `${app}, ${what}: counts from 1`);
        assert.notEqual(probe.id, id, `${app}, ${what}: a new id, never the client's`);
        redis("DEL", `sess:${probe.id}`);
      }
    }
    const s = stored(id);
    assert.equal(s.node_visits, 1, "the real session is untouched");
    assert.equal(s.lua_visits, 1);
  });
});

test("(e) after a Lua write the Redis TTL matches the cookie lifetime and the cookie object is express-session's", async () => {
  const jar = new Jar();
  await get(NODE, "/visit", jar);
  const id = jar.id;
  redis("EXPIRE", `sess:${id}`, "60"); // as if Node had written it long ago
  const before = Date.now();
  const r = await get(LUA, "/visit", jar);
  const after = Date.now();

  const ttl = Number(redis("TTL", `sess:${id}`));
  assert.ok(ttl > TTL - 10 && ttl <= TTL, `TTL ${ttl} is about ${TTL}`);

  const maxAge = /;\s*Max-Age=(\d+)/i.exec(r.setCookie);
  assert.ok(maxAge, `Lua's Set-Cookie has Max-Age: ${r.setCookie}`);
  assert.equal(Number(maxAge[1]), TTL);

  const { cookie } = stored(id);
  assert.equal(cookie.originalMaxAge, TTL * 1000);
  assert.match(cookie.expires, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/, "ISO-8601 expires");
  const expires = Date.parse(cookie.expires);
  assert.ok(expires >= before + TTL * 1000 - 1000 && expires <= after + TTL * 1000 + 1000,
    `expires ${cookie.expires} is now + ${TTL}s`);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.path, "/");
  assert.equal(cookie.secure, false);
  assert.equal(cookie.sameSite, "lax");
  const cookieExpires = /;\s*Expires=([^;]+)/i.exec(r.setCookie);
  assert.ok(cookieExpires, "Set-Cookie has Expires");
  assert.ok(Math.abs(Date.parse(cookieExpires[1]) - expires) < 2000, "cookie and store expire together");

  // Node reads the same cookie object back.
  const n = await get(NODE, "/show", jar);
  assert.equal(n.body.cookie.originalMaxAge, TTL * 1000);
  assert.equal(n.body.lua_visits, 1);
});

const MONTH = 30 * 86400;
const maxAgeOf = (line) => {
  const m = /;\s*Max-Age=(\d+)/i.exec(line || "");
  return m ? Number(m[1]) : undefined;
};

test("(h) a Node remember-me session keeps its 30 days through Lua reads and writes", async () => {
  const jar = new Jar();
  await get(NODE, "/remember", jar);
  const id = jar.id;
  assert.equal((await get(LUA, "/lifetime", jar)).body.maxAge, MONTH * 1000, "Lua sees 30 days");
  const r = await get(LUA, "/visit", jar);
  assert.equal(maxAgeOf(r.setCookie), MONTH, `Lua's cookie lives 30 days: ${r.setCookie}`);
  const ttl = Number(redis("TTL", `sess:${id}`));
  assert.ok(ttl > MONTH - 10 && ttl <= MONTH, `Redis TTL ${ttl} is 30 days`);
  const { cookie, remembered, lua_visits } = stored(id);
  assert.equal(cookie.originalMaxAge, MONTH * 1000);
  assert.equal(remembered, true);
  assert.equal(lua_visits, 1);
  const n = await get(NODE, "/show", jar);
  assert.equal(n.body.cookie.originalMaxAge, MONTH * 1000, "Node still sees 30 days");
});

test("(i) a Lua remember-me session keeps its 30 days through Node reads and writes", async () => {
  const jar = new Jar();
  await get(LUA, "/visit", jar); // a session Lua creates with the app's default day
  const r = await get(LUA, "/remember", jar);
  assert.equal(maxAgeOf(r.setCookie), MONTH);
  const id = jar.id;
  const n = await get(NODE, "/visit", jar);
  assert.equal(n.body.cookie.originalMaxAge, MONTH * 1000, "Node reads 30 days");
  const ttl = Number(redis("TTL", `sess:${id}`));
  assert.ok(ttl > MONTH - 10 && ttl <= MONTH, `Redis TTL ${ttl} after Node's write is 30 days`);
  assert.ok(n.setCookie, "Node re-sends the cookie of a modified session");
  const expires = Date.parse(/;\s*Expires=([^;]+)/i.exec(n.setCookie)[1]);
  assert.ok(Math.abs(expires - (Date.now() + MONTH * 1000)) < 60000, `Node's cookie lives 30 days: ${n.setCookie}`);
  assert.equal((await get(LUA, "/lifetime", jar)).body.maxAge, MONTH * 1000, "and Lua reads it back");
});

test("(j) a Node browser-session cookie stays one when Lua writes the session", async () => {
  const jar = new Jar();
  await get(NODE, "/browser", jar);
  const id = jar.id;
  assert.equal(stored(id).cookie.originalMaxAge, null);
  const r = await get(LUA, "/visit", jar);
  assert.ok(r.setCookie, "Lua sends the cookie of the session it wrote");
  assert.equal(maxAgeOf(r.setCookie), undefined, `no Max-Age: ${r.setCookie}`);
  assert.doesNotMatch(r.setCookie, /expires=/i);
  assert.equal(stored(id).cookie.originalMaxAge, null, "the stored cookie is still a browser-session one");
  const ttl = Number(redis("TTL", `sess:${id}`));
  assert.ok(ttl > TTL - 10 && ttl <= TTL, `the key still expires after the Lua app's ttl: ${ttl}`);
});

// express-session does not know that Lua's regenerate retired the old id: a parallel request it
// serves with that id during the grace writes the key again and re-sends its cookie, and each
// later Node request refreshes the key's TTL (connect-redis's touch). Past the grace Lua must
// treat the id as gone: it used to read it as retired (read only) for as long as Node kept it
// alive, and a login through it stored nothing and sent no cookie.
test("(k) an id Lua's login retired that Node keeps alive is gone for Lua past the grace", async () => {
  const GRACE = 2000; // interop/lua/routes.lua's staleGrace
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const jar = new Jar();
  await get(NODE, "/visit", jar);
  const oldId = jar.id;
  const parallel = new Jar(jar.raw);
  await get(LUA, "/login", jar);
  const loggedIn = Date.now();
  assert.notEqual(jar.id, oldId, "the login has a new id");
  assert.equal(typeof stored(oldId).__meta.stale, "number", "the old id is retired");

  // A parallel request to Node with the old cookie, within the grace, then another later.
  assert.equal((await get(NODE, "/visit", parallel)).body.node_visits, 2);
  assert.equal(parallel.id, oldId, "Node sent the old id's cookie again");
  await sleep(GRACE * 0.75);
  await get(NODE, "/show", parallel);
  await sleep(Math.max(0, loggedIn + GRACE + 300 - Date.now()));
  assert.equal(redis("EXISTS", `sess:${oldId}`), "1", "Node kept the old id alive past the grace");

  const show = await get(LUA, "/show", parallel);
  assert.deepEqual(show.body, {}, "past the grace Lua does not read the old id");
  const login = await get(LUA, "/login", parallel);
  assert.ok(login.setCookie, "a login through the old cookie goes out");
  assert.notEqual(parallel.id, oldId);
  assert.equal((await get(LUA, "/show", parallel)).body.user, "u-lua");
});

test("(f) Lua /logout deletes the key; Node then starts a fresh session", async () => {
  const jar = new Jar();
  await get(NODE, "/visit", jar);
  await get(LUA, "/visit", jar);
  const id = jar.id;
  const old = jar.raw;
  assert.equal(redis("EXISTS", `sess:${id}`), "1");

  const r = await get(LUA, "/logout", jar);
  assert.deepEqual(r.body, { destroyed: true });
  assert.equal(redis("EXISTS", `sess:${id}`), "0", "the key is gone");
  assert.ok(r.setCookie, "Lua sent a clearing cookie");
  assert.equal(jar.raw, undefined, "the jar dropped the cleared cookie");

  // A client that ignores the clearing cookie: Node must not revive the session.
  const stale = new Jar(old);
  const show = await get(NODE, "/show", stale);
  assert.equal(show.body.node_visits, undefined);
  assert.equal(show.body.lua_visits, undefined);
  const visit = await get(NODE, "/visit", stale);
  assert.equal(visit.body.node_visits, 1);
  assert.equal(visit.body.lua_visits, undefined);
  assert.notEqual(stale.id, id, "a fresh id");
  assert.equal(redis("EXISTS", `sess:${id}`), "0", "the old key stays gone");

  // And Lua does not revive it either.
  const lua = await get(LUA, "/show", new Jar(old));
  assert.deepEqual(lua.body, {});
});

// Value fidelity between the two (each was a RedisStore bug this suite found).
test("(g) values survive the trip between Node and Lua unchanged", async (t) => {
  await t.test("a Lua array of 300 items is an array for Node and for Lua", async () => {
    const jar = new Jar();
    await get(LUA, "/list?n=300", jar);
    const raw = redis("GET", `sess:${jar.id}`);
    assert.ok(Array.isArray(JSON.parse(raw).list), `stored as an array: ${raw.slice(0, 200)}`);
    const n = await get(NODE, "/show", jar);
    assert.deepEqual(n.body.list, Array.from({ length: 300 }, (_, i) => i + 1));
    const l = await get(LUA, "/show", jar);
    assert.deepEqual(l.body.list, Array.from({ length: 300 }, (_, i) => i + 1), "Lua reads it back");
  });

  await t.test("a Lua array of 255 items is an array for Node", async () => {
    const jar = new Jar();
    await get(LUA, "/list?n=255", jar);
    const n = await get(NODE, "/show", jar);
    assert.deepEqual(n.body.list, Array.from({ length: 255 }, (_, i) => i + 1));
  });

  await t.test("floats Node stored are exact after a Lua write (untouched) and as Lua reads them", async () => {
    const jar = new Jar();
    const f = [7.39365338279521e-15, 0.9207047216288253, 0.21196191407932274, 0.1];
    await get(NODE, "/merge", jar, { f });
    const l = await get(LUA, "/visit", jar);
    const n = await get(NODE, "/show", jar);
    assert.deepEqual(n.body.f, f, "untouched by Lua, unchanged for Node");
    assert.deepEqual(l.body.f, f, "Lua read the same numbers");
  });

  await t.test("a string with a lone surrogate (valid JSON from JSON.stringify) does not break Lua", async () => {
    const jar = new Jar();
    await get(NODE, "/merge", jar, { note: "cut emoji \ud83d" });
    const l = await get(LUA, "/visit", jar);
    assert.equal(l.body.lua_visits, 1);
  });

  await t.test("arrays inside a key Lua writes stay arrays, empty or with nulls, and Node can push", async () => {
    const jar = new Jar();
    await get(NODE, "/merge", jar, { cart: { items: [], holes: [1, null, 3], nested: [[]] } });
    const l = await get(LUA, "/coupon", jar);
    assert.equal(l.body.cart.coupon, "WELCOME");
    const cart = JSON.parse(redis("GET", `sess:${jar.id}`)).cart;
    assert.deepEqual(cart, { coupon: "WELCOME", gifts: [], holes: [1, null, 3], items: [], nested: [[]] });
    const n = await get(NODE, "/cart-push", jar);
    assert.deepEqual(n.body.cart.items, ["BK-1"]);
    assert.deepEqual(n.body.cart.gifts, ["mug"]);
  });

  await t.test("untouched Node keys keep their key order and bytes after a Lua write", async () => {
    const jar = new Jar();
    await get(NODE, "/merge", jar, { zeta: { user: "u", roles: [] }, alpha: 1 });
    const before = JSON.parse(redis("GET", `sess:${jar.id}`));
    await get(LUA, "/visit", jar);
    const after = JSON.parse(redis("GET", `sess:${jar.id}`));
    assert.equal(JSON.stringify(after.zeta), JSON.stringify(before.zeta));
  });

  await t.test("integers past 2^53 that Node stored do not make a read-only Lua request write", async () => {
    const jar = new Jar();
    await get(NODE, "/merge", jar, { big: 2 ** 60, n: 9007199254740993 });
    const before = redis("GET", `sess:${jar.id}`);
    const l = await get(LUA, "/show", jar);
    assert.equal(l.setCookie, undefined, "nothing changed, so nothing was written or sent");
    assert.equal(redis("GET", `sess:${jar.id}`), before);
  });
});
