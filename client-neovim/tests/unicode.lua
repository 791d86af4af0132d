-- Accepting a word with non-ASCII letters takes it whole, and the accepted length
-- reported to the server is in Unicode code points, not bytes.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

H.run(function()
  local buf = H.open()
  H.type("Go    ")
  H.wait("ghost text", function()
    return #H.ghosts(buf) > 0
  end)
  H.see("id", require("zi.inline").current(buf).id)
  H.type("<M-w>")
  H.wait("one word in the buffer", function()
    return H.lines(buf)[2] ~= "    "
  end)
  H.see("after_word", { line = H.lines(buf)[2], cursor = H.cursor(), ghosts = H.ghosts(buf) })
end)
