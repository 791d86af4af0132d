-- Ghost text: the suggestion drawn with one extmark at the cursor, its first line
-- inline (the rest of the real line moves right), further lines as virtual lines.
local M = {}

M.ns = vim.api.nvim_create_namespace("zi.ghost")

function M.show(buf, row, col, text, hl_group)
  M.clear(buf)
  local lines = vim.split(text, "\n", { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], hl_group } }
  end
  return vim.api.nvim_buf_set_extmark(buf, M.ns, row, col, {
    virt_text = { { lines[1], hl_group } },
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = "combine",
  })
end

function M.clear(buf)
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  end
end

return M
