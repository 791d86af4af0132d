-- Diagnostics and quick fixes come through Neovim's own LSP client: the server's
-- static checks show up in vim.diagnostic, and "Fix with Zi" applies the model's edit.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

H.run(function()
  local buf = H.open()
  local problems = H.wait("diagnostics", function()
    local found = vim.diagnostic.get(buf)
    return #found > 0 and found
  end)
  local seen = {}
  for _, d in ipairs(problems) do
    seen[#seen + 1] = { lnum = d.lnum, source = d.source, code = d.code, severity = d.severity }
  end
  table.sort(seen, function(a, b)
    return a.lnum < b.lnum
  end)
  H.see("diagnostics", seen)

  local broken = H.lines(buf)[5]
  vim.api.nvim_win_set_cursor(0, { 5, 30 })
  vim.lsp.buf.code_action({
    apply = true, -- one action left by the filter: applied without a menu
    filter = function(action)
      return vim.startswith(action.title, "Fix with Zi: Undefined name")
    end,
  })
  H.wait("the fix in the buffer", function()
    return H.lines(buf)[5] ~= broken
  end)
  H.see("lines", H.lines(buf))
end)
