-- A `cmd` that is not installed: vim.lsp.enable() would say nothing, setup() warns
-- (once), and a `cmd` that is found gets no warning.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

local notes = {}
vim.notify = function(msg, level)
  notes[#notes + 1] = { msg = msg, level = level }
end

H.run(function()
  require("zi").setup({ cmd = { vim.v.progpath, "serve" } })
  H.see("found", vim.deepcopy(notes))
  require("zi").setup({ cmd = { "zi-coder-not-installed", "serve" } })
  require("zi").setup({ cmd = { "zi-coder-not-installed", "serve" } })
  H.see("missing", notes)
  H.see("warn", vim.log.levels.WARN)
end)
