// Adversarial Cookie headers, and which session id express-session reads from each: the input of
// the differential check of interop/cookies.test.mjs (the Lua side is interop/cookies/check.lua).
// Deterministic: a seeded generator, so a failing case number names the same header every run.
//
// For every header it works out, with express-session's own code (the `cookie` and
// `cookie-signature` packages it depends on):
//   express   the id express-session loads: the real middleware over a store that holds the
//             case's live ids (it reads the first cookie of the name only);
//   ours      the ids honeymoon_session must look up, in order (README, "Decisions where the spec
//             is silent"): every cookie of the name as `cookie`'s parser reads it, unsigned as
//             express-session unsigns, kept when the id has the shape we look up (1 to 128
//             characters of base64url), each distinct id once, at most 4; and the first of them
//             that is live.
// `ours` is computed from a parser that collects every cookie of the name; its first value is
// checked against `cookie.parse` itself and its first id against the middleware, so the model
// is express-session's reading wherever express-session reads anything.
//
// Every case where the two readings differ must differ by one of those two decisions; the counts
// of each go to stderr as JSON ({ same, laterDuplicate, idShape }).
//
// Output, one line per case, tab-separated, byte strings in hex ("-" for none, lists joined by
// ","): `case N name secrets live header candidates live_id express_id`, where live is "*"
// (every id is live) or the live ids.
import { createRequire } from "node:module";
import { createHmac } from "node:crypto";
import assert from "node:assert/strict";

const require = createRequire(new URL("../node/node_modules/express-session/", import.meta.url));
const session = require("express-session");
const cookie = require("cookie");
const signature = require("cookie-signature");

// The parse loop of cookie@0.7.2 (express-session's), collecting every value of `name` in order.
function startIndex(str, index, max) {
  do {
    const code = str.charCodeAt(index);
    if (code !== 0x20 && code !== 0x09) return index;
  } while (++index < max);
  return max;
}
function endIndex(str, index, min) {
  while (index > min) {
    const code = str.charCodeAt(--index);
    if (code !== 0x20 && code !== 0x09) return index + 1;
  }
  return min;
}
function tryDecode(str) {
  try {
    return str.indexOf("%") !== -1 ? decodeURIComponent(str) : str;
  } catch {
    return str;
  }
}
function parseAll(str, name) {
  const out = [];
  const len = str.length;
  if (len < 2) return out;
  let index = 0;
  do {
    const eqIdx = str.indexOf("=", index);
    if (eqIdx === -1) break;
    let endIdx = str.indexOf(";", index);
    if (endIdx === -1) {
      endIdx = len;
    } else if (eqIdx > endIdx) {
      index = str.lastIndexOf(";", eqIdx - 1) + 1;
      continue;
    }
    const keyStart = startIndex(str, index, eqIdx);
    const key = str.slice(keyStart, endIndex(str, eqIdx, keyStart));
    if (key === name) {
      let valStart = startIndex(str, eqIdx + 1, endIdx);
      let valEnd = endIndex(str, endIdx, valStart);
      if (str.charCodeAt(valStart) === 0x22 && str.charCodeAt(valEnd - 1) === 0x22) {
        valStart++;
        valEnd--;
      }
      out.push(tryDecode(str.slice(valStart, valEnd)));
    }
    index = endIdx + 1;
  } while (index < len);
  return out;
}

// express-session's getcookie for one raw value: the id, or undefined.
function unsignValue(raw, secrets) {
  if (!raw || raw.substr(0, 2) !== "s:") return undefined;
  for (const secret of secrets) {
    const id = signature.unsign(raw.slice(2), secret);
    if (id !== false) return id;
  }
  return undefined;
}

const MAX_CANDIDATES = 4;
const SHAPE = /^[A-Za-z0-9_-]{1,128}$/;

// The id express-session's middleware loads for `header`, given which ids the store holds.
function expressReads(header, name, secrets, live) {
  const asked = [];
  class Store extends session.Store {
    get(id, cb) {
      asked.push(id);
      cb(null, live(id) ? { cookie: { originalMaxAge: null } } : null);
    }
    set(id, s, cb) { cb && cb(); }
    destroy(id, cb) { cb && cb(); }
  }
  const mw = session({ secret: secrets, name, store: new Store(), resave: false, saveUninitialized: false });
  const req = { headers: { cookie: header }, url: "/", originalUrl: "/" };
  const res = { writeHead() {}, end() {}, write() {}, getHeader() {}, setHeader() {} };
  let called = false;
  mw(req, res, () => { called = true; });
  assert.ok(called, "express-session answered synchronously");
  assert.ok(asked.length <= 1);
  return asked.length === 1 && live(asked[0]) && req.sessionID === asked[0] ? asked[0] : undefined;
}

// mulberry32
let seed = 0x5eed1e55;
function rnd() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];
const chance = (p) => rnd() < p;

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const word = (n, alphabet = B64URL) => Array.from({ length: n }, () => pick(alphabet)).join("");

const SECRET_SETS = [["s1"], ["new", "old"], ["sécret ü", "k2", "k3"], ["x".repeat(80)]];
const NAMES = ["connect.sid", "sid", "__Host-sid"];
const FOREIGN = "foreign secret";

function someId() {
  return pick([
    () => word(32),
    () => word(32),
    () => word(32),
    () => "3b241101-e2bb-4255-8caf-4136c566a962",
    () => word(1),
    () => word(128),
    () => word(129), // one longer than we look up
    () => "has space",
    () => "a.b",
    () => "café",
    () => "a+b/c=",
    () => "%41" + word(8),
    () => "",
    () => word(10) + "\u00ff",
  ])();
}

function sig(id, secret) {
  return createHmac("sha256", secret).update(id).digest("base64").replace(/=+$/, "");
}

// A signature text changed the ways a client might: padded, cut, lengthened, non-canonical
// trailing bits, base64url, one character changed.
function mangle(s) {
  switch (int(8)) {
    case 0: return s + "=";
    case 1: return s.slice(0, -1);
    case 2: return s + "A";
    case 3: { // the same bytes, other trailing bits (a 43rd character carries 4 bits and 2 spare)
      const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const last = A.indexOf(s[s.length - 1]);
      return s.slice(0, -1) + A[(last & ~3) | (1 + int(3))];
    }
    case 4: return s.replace(/\+/g, "-").replace(/\//g, "_") + (s.includes("+") || s.includes("/") ? "" : "x");
    case 5: return s.slice(0, 10) + (s[10] === "A" ? "B" : "A") + s.slice(11);
    case 6: return s + "==";
    default: return "";
  }
}

function encodeAll(s) {
  return Array.from(Buffer.from(s, "utf8"), (b) => "%" + b.toString(16).toUpperCase().padStart(2, "0")).join("");
}

// A value for the session cookie: [value text as it appears in the header, ids it could name].
function sessionValue(secrets) {
  const id = someId();
  const secret = chance(0.1) ? FOREIGN : chance(0.7) ? secrets[0] : pick(secrets);
  let s = chance(0.8) ? sig(id, secret) : mangle(sig(id, secret));
  let plain = `s:${id}.${s}`;
  if (chance(0.08)) plain = pick([`S:${id}.${s}`, `${id}.${s}`, `s:s:${id}.${s}`, ` s:${id}.${s}`, `s:${id}`, "s:", ""]);
  let v;
  switch (int(9)) {
    case 0: v = plain; break;
    case 1: v = plain.replace(/[:+/=]/g, (c) => encodeURIComponent(c)).replace(/%3A/g, "%3a"); break;
    case 2: v = encodeAll(plain); break;
    default: v = encodeURIComponent(plain);
  }
  // Characters a decoder must refuse or may keep: cut or bad escapes, raw and encoded non-ASCII.
  if (chance(0.15)) {
    const bad = pick(["%zz", "%E0%A4%A", "%", "%C3%A9", "\u00e9", "\u0080", "%80", "%2", "%%"]);
    const at = chance(0.5) ? v.length : int(v.length + 1);
    v = v.slice(0, at) + bad + v.slice(at);
  }
  if (chance(0.12)) v = `"${v}"`;
  if (chance(0.05)) v = `"${v}`;
  // Whitespace around the value: spaces and tabs (which `cookie` trims), and others it does not.
  if (chance(0.15)) v = pick([" ", "\t", " \t ", "\f", "\v", "\r"]) + v;
  if (chance(0.15)) v = v + pick([" ", "\t", "\t ", "\f", "\v", "\r"]);
  return [v, [id]];
}

function sessionName(name) {
  if (chance(0.85)) {
    let n = name;
    if (chance(0.2)) n = pick([" ", "\t", "  ", " \t", "\f", "\v"]) + n;
    if (chance(0.2)) n = n + pick([" ", "\t", "\f"]);
    return n;
  }
  return pick([name.toUpperCase(), name[0].toUpperCase() + name.slice(1), "x" + name, name + "x", name.slice(1), `"${name}"`]);
}

function filler() {
  return pick([
    "a=b", "junk", "=x", "x=", 'q="quoted"', "a=%zz", '"', "=", "", " ", "theme=dark",
    "big=" + "x".repeat(int(3) === 0 ? 9000 : 300), "n\u00e9=v\u00ff", "a=b=c", "k", "%=%",
  ]);
}

const SEPARATORS = ["; ", "; ", "; ", ";", " ;", ";\t", "; ;", ";;", " ; "];

const CASES = Number(process.env.COOKIE_CASES || 6000);
const hex = (s) => (s === undefined ? "-" : Buffer.from(s, "latin1").toString("hex") || "-");
const hexUtf8 = (s) => Buffer.from(s, "utf8").toString("hex");
const list = (a) => (a.length === 0 ? "-" : a.map(hex).join(","));

const lines = [];
const summary = { same: 0, laterDuplicate: 0, idShape: 0 };
for (let n = 1; n <= CASES; n++) {
  const secrets = pick(SECRET_SETS);
  const name = pick(NAMES);
  const parts = [];
  const ids = [];
  // Now and then many genuine cookies of the name: we look up at most 4 distinct ids.
  const many = chance(0.04);
  const count = many ? 5 + int(4) : 1 + int(6);
  for (let i = 0; i < count; i++) {
    if (many && chance(0.8)) {
      const id = chance(0.2) && ids.length > 0 ? pick(ids) : word(32);
      parts.push(`${name}=${encodeURIComponent(`s:${id}.${sig(id, pick(secrets))}`)}`);
      ids.push(id);
    } else if (chance(0.55)) {
      const [v, named] = sessionValue(secrets);
      parts.push(`${sessionName(name)}=${v}`);
      ids.push(...named);
    } else {
      parts.push(filler());
    }
  }
  // Duplicates of one cookie (a browser sending the same cookie for two paths).
  if (chance(0.1) && parts.length > 0) parts.push(pick(parts));
  let header = parts[0];
  for (const p of parts.slice(1)) header += pick(SEPARATORS) + p;
  if (chance(0.05)) header = pick([" ", ";", "; "]) + header;
  if (chance(0.05)) header += pick([";", "; ", " "]);
  assert.ok(!/[^\u0000-\u00ff]/.test(header), "a header holds latin1 characters only (bytes)");

  const liveAll = chance(0.5);
  const liveSet = new Set(liveAll ? [] : ids.filter(() => chance(0.5)));
  const live = (id) => liveAll || liveSet.has(id);

  const values = parseAll(header, name);
  // The first value is the one `cookie.parse` keeps.
  assert.equal(values[0], cookie.parse(header)[name], `case ${n}: parseAll agrees with cookie.parse`);
  const candidates = [];
  for (const v of values) {
    const id = unsignValue(v, secrets);
    if (id !== undefined && SHAPE.test(id) && !candidates.includes(id)) candidates.push(id);
    if (candidates.length === MAX_CANDIDATES) break;
  }
  const express = expressReads(header, name, secrets, live);
  // The model's reading of the first cookie is the middleware's.
  const first = unsignValue(values[0], secrets);
  assert.equal(express, first && live(first) ? first : undefined, `case ${n}: the model reads what express-session reads`);
  const ours = candidates.find(live);
  // Where the two differ, it is by one of the README's decisions, never otherwise: a later
  // duplicate of the cookie express-session reads (it reads the first only), or an id of a
  // shape we do not look up (README, "Cookies and ids").
  if (express === ours) summary.same++;
  else if (express === undefined && ours !== undefined && values.slice(1).some((v) => unsignValue(v, secrets) === ours)) summary.laterDuplicate++;
  else if (express !== undefined && !SHAPE.test(express)) summary.idShape++;
  else assert.fail(`case ${n}: express-session reads ${express}, we would read ${ours}, not by a documented rule`);
  lines.push(["case", n, hex(name), secrets.map(hexUtf8).join(","), liveAll ? "*" : list([...liveSet]),
    hex(header), list(candidates), hex(ours), hex(express)].join("\t"));
}
process.stdout.write(lines.join("\n") + "\n");
// How many cases read the same session, and how many differ by each documented rule.
process.stderr.write(JSON.stringify(summary) + "\n");
