-- Partial accepts: <M-w> and <C-Right> take one word each, <M-l> the rest of the line;
-- what is left stays shown, and the accepted length so far is reported.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

local function accept(keys, name, buf)
  local before = H.lines(buf)[2]
  H.type(keys)
  H.wait(name, function()
    return H.lines(buf)[2] ~= before
  end)
  H.see(name, { line = H.lines(buf)[2], cursor = H.cursor(), ghosts = H.ghosts(buf) })
end

H.run(function()
  local buf = H.open()
  H.type("Go    ")
  H.wait("ghost text", function()
    return #H.ghosts(buf) > 0
  end)
  H.see("ghosts", H.ghosts(buf))
  H.see("id", require("zi.inline").current(buf).id)

  accept("<M-w>", "after_word", buf)
  accept("<C-Right>", "after_second_word", buf)
  accept("<M-l>", "after_line", buf)
  H.see("lines", H.lines(buf))
end)
