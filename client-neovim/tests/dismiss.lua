-- Dismissing: <C-]>, leaving insert mode and moving the cursor remove the ghost text;
-- with nothing shown, <Tab> does what it always does.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

local function shown(buf)
  return function()
    return #H.ghosts(buf) > 0
  end
end

H.run(function()
  local buf = H.open()
  H.type("Go    ")
  H.wait("ghost text", shown(buf))

  H.type("<C-]>")
  H.wait("no ghost text after <C-]>", function()
    return #H.ghosts(buf) == 0
  end)
  H.see("after_ctrl_bracket", { lines = H.lines(buf), mode = vim.api.nvim_get_mode().mode })

  H.type("<Tab>") -- nothing shown: an indent, as without the plugin
  H.wait("the <Tab> indent", function()
    return H.lines(buf)[2] ~= "    "
  end)
  H.see("after_tab", H.lines(buf))

  H.wait("ghost text again", shown(buf))
  H.type("<Esc>")
  H.wait("no ghost text in normal mode", function()
    return #H.ghosts(buf) == 0 and vim.api.nvim_get_mode().mode == "n"
  end)
  H.see("after_esc", { lines = H.lines(buf), ghosts = H.ghosts(buf) })

  H.type("A")
  local ghost = H.wait("ghost text after A", function()
    return H.ghosts(buf)[1]
  end)
  H.type("<Left>")
  -- A fresh suggestion may follow at the new position; the old one must be gone.
  H.wait("the ghost text at the old position to go", function()
    local g = H.ghosts(buf)[1]
    return not g or g.col ~= ghost.col
  end)
  H.see("moved", { old = { ghost.row, ghost.col }, cursor = H.cursor(), ghosts = H.ghosts(buf) })
end)
