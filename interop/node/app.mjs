// Express app for the interop test: express-session + connect-redis, the same cookie name,
// secret and key prefix as the Lua app (interop/lua/routes.lua), so the two share sessions
// through Redis.
// PORT and REDIS_URL from the environment.
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient } from "redis";

const port = Number(process.env.PORT || 3000);
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";

const client = createClient({ url: redisUrl });
client.on("error", (e) => console.error("redis:", e.message));
await client.connect();

const app = express();
app.use(
  session({
    name: "connect.sid",
    secret: "interop-secret",
    resave: false,
    saveUninitialized: false,
    store: new RedisStore({ client, prefix: "sess:" }),
    cookie: { maxAge: 86400 * 1000, httpOnly: true, sameSite: "lax", path: "/" },
  }),
);

app.get("/visit", (req, res) => {
  req.session.node_visits = (req.session.node_visits || 0) + 1;
  res.json(req.session);
});

app.get("/passport", (req, res) => {
  req.session.passport = { user: "u-123", roles: [] };
  res.json(req.session);
});

// Test aid: merge a JSON object's keys into the session (values exactly as JSON.parse gives them).
app.post("/merge", express.json(), (req, res) => {
  Object.assign(req.session, req.body);
  res.json(req.session);
});

// Remember me: this session's cookie (and so its Redis TTL) lives 30 days.
app.get("/remember", (req, res) => {
  req.session.cookie.maxAge = 30 * 86400 * 1000;
  req.session.remembered = true;
  res.json(req.session);
});

// A browser-session cookie (express-session's maxAge = null).
app.get("/browser", (req, res) => {
  req.session.cookie.maxAge = null;
  req.session.browser = true;
  res.json(req.session);
});

// Uses the cart's arrays as arrays (after a Lua write of the cart).
app.get("/cart-push", (req, res) => {
  req.session.cart.items.push("BK-1");
  req.session.cart.gifts.push("mug");
  res.json(req.session);
});

app.get("/show", (req, res) => {
  res.json(req.session);
});

const server = app.listen(port, "127.0.0.1", () => {
  console.log(`node app on http://127.0.0.1:${port}`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close();
    client.quit().finally(() => process.exit(0));
  });
}
