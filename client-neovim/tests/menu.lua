-- The built-in completion menu over a suggestion: Neovim sends TextChangedP (no
-- TextChangedI, no CursorMovedI) while it is open, and <Tab> belongs to the menu.
-- The stale suggestion must go, and <Tab> must not insert it where it was drawn.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

H.run(function()
  local buf = H.open()
  H.type("Go    ")
  H.wait("ghost text", function()
    return #H.ghosts(buf) > 0
  end)

  H.type("<C-n>") -- the buffer's words; the first one is inserted
  H.wait("the completion menu", function()
    return vim.fn.pumvisible() == 1 and H.lines(buf)[2] ~= "    "
  end)
  local menu = H.see("menu", { line = H.lines(buf)[2], ghosts = H.ghosts(buf) })

  H.type("<Tab>")
  H.wait("<Tab> to do something", function()
    return vim.fn.pumvisible() == 0 or H.lines(buf)[2] ~= menu.line
  end)
  H.see("after_tab", { lines = H.lines(buf), menu = vim.fn.pumvisible() })
end)
