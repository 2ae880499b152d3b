-- The routes of the bench's first rows (anonymous, read, write, login), shared by
-- bench/overhead.lua, which times them, and bench/callgrind.lua, which counts their
-- instructions: both must measure the same handlers. Without the middleware req.session is nil
-- and the handlers skip it.
return function(app)
    app:get("/anon", function(_, res) res:text("ok") end)
    app:get("/read", function(req, res) res:text(req.session and tostring(req.session.userId) or "42") end)
    app:get("/write", function(req, res)
        local s = req.session
        if s then s.counter = (s.counter or 0) + 1 end
        res:text("ok")
    end)
    app:post("/login", function(req, res)
        local s = req.session
        if s then
            s:regenerate(false)
            s.userId = 42
        end
        res:redirect("/dashboard")
    end)
    return app
end
