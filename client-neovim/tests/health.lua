-- :checkhealth zi with the client connected.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

H.run(function()
  H.open()
  vim.cmd("checkhealth zi")
  H.see("health", H.lines(0))
end)
