-- A smoke test of the Neovim 0.12+ branch, run on 0.11 with a recording stand-in
-- for 0.12's vim.lsp.inline_completion (0.12 is not installable here, so Neovim's
-- real client, its ghost text and its accept are not exercised): the plugin must
-- detect it, enable it per buffer instead of drawing its own ghost text, and send
-- <Tab> through its get(), keeping <Tab>'s usual meaning when get() accepts nothing.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

local calls = {}
vim.lsp.inline_completion = {
  enable = function(enable, filter)
    calls[#calls + 1] = { "enable", enable, filter }
  end,
  get = function()
    calls[#calls + 1] = { "get" }
    return false
  end,
}

H.run(function()
  local buf, client = H.open()
  H.type("Go    <Tab>")
  H.wait("the <Tab> indent", function()
    return H.lines(buf)[2] == "        "
  end)
  H.see("calls", calls)
  H.see("own_autocmds", pcall(vim.api.nvim_get_autocmds, { group = "zi.inline." .. buf }))
  H.see("buf", buf)
  H.see("tab_desc", vim.fn.maparg("<Tab>", "i", false, true).desc)
  vim.lsp.buf_detach_client(buf, client.id)
  H.see("tab_desc_after_detach", H.wait("the plugin's <Tab> to go", function()
    local desc = vim.fn.maparg("<Tab>", "i", false, true).desc
    return not vim.startswith(desc or "", "Zi:") and (desc or "(none)")
  end))
end)
