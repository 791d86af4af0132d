-- Typing the suggestion's next characters keeps the rest shown at once (no debounce,
-- no round trip); <Tab> then inserts the rest. A character that differs clears it.
-- The debounce is long (1 s), so no fresh answer can stand in for the kept one.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

local function type_and_see(keys, name, buf, line, lnum)
  H.type(keys)
  H.wait(name, function()
    return H.lines(buf)[lnum or 2] == line
  end)
  H.see(name, { ghosts = H.ghosts(buf), cursor = H.cursor() })
end

H.run(function()
  local buf = H.open({ debounce_ms = 1000 })
  H.type("Go    ")
  H.wait("ghost text", function()
    return #H.ghosts(buf) > 0
  end)
  H.see("shown", H.ghosts(buf))

  type_and_see("r", "after_r", buf, "    r")
  type_and_see("e", "after_re", buf, "    re")
  H.type("<Tab>")
  H.wait("the rest in the buffer", function()
    return H.lines(buf)[2] ~= "    re"
  end)
  H.see("accepted", H.lines(buf))

  H.type("<CR>")
  H.wait("ghost text on the next line", function()
    local g = H.ghosts(buf)[1]
    return g and g.row == 2
  end)
  local line = H.lines(buf)[3]
  type_and_see("x", "after_x", buf, line .. "x", 3)
end)
