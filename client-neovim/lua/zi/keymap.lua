-- Insert-mode keys that act on a shown suggestion and otherwise do what they did
-- before the plugin mapped them: the buffer-local mapping the plugin replaced, else
-- the global one (a completion or snippet plugin's <Tab>, Neovim's own snippet
-- <Tab>, the user's), else the key itself. Each key is a buffer-local expr mapping;
-- on detach it is deleted and the buffer-local mapping it replaced is put back.
local M = {}

---@class zi.SavedKey
---@field key string the key as the plugin mapped it ("<Tab>")
---@field previous table|false the buffer-local mapping it replaced (maparg() dict)

local saved = {} ---@type table<integer, table<string, zi.SavedKey>> buf -> raw key -> ...
local pending_callback ---@type function? a non-expr Lua mapping to run outside textlock

local DESC_PREFIX = "Zi: "

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, true, true)
end

-- The mapping `key` runs in `buf` when the plugin's own does not act, or nil.
local function previous(buf, key)
  local raw = termcodes(key)
  local entry = saved[buf] and saved[buf][raw]
  if entry and entry.previous then
    return entry.previous
  end
  -- The global mapping is looked up now, not when the buffer was attached: plugins
  -- loaded later (or mappings made later) still get the key.
  for _, m in ipairs(vim.api.nvim_get_keymap("i")) do
    if m.lhsraw == raw or m.lhsrawalt == raw then
      return m
    end
  end
end

--- What `key` does without the plugin, as keys for an expr mapping to return (raw
--- termcodes). Mappings are honoured as they were defined: an expr mapping is
--- evaluated here (under textlock, as it would be anyway), an rhs is fed with or
--- without remapping, and a non-expr Lua callback runs from a <Cmd>, outside textlock.
function M.fallback(buf, key)
  local m = previous(buf, key)
  if not m then
    return termcodes(key)
  end
  local mode = m.noremap == 1 and "in" or "im" -- "i": before what is already typed ahead
  if m.expr == 1 then
    local keys
    if m.callback then
      keys = m.callback()
      if type(keys) ~= "string" then
        keys = ""
      elseif m.replace_keycodes == 1 then
        keys = termcodes(keys)
      end
    else
      keys = vim.api.nvim_eval(m.rhs) -- "\<Tab>" in the expression is already a key
    end
    vim.api.nvim_feedkeys(tostring(keys), mode, false)
  elseif m.callback then
    pending_callback = m.callback
    return termcodes("<Cmd>lua require('zi.keymap').run_pending()<CR>")
  else
    vim.api.nvim_feedkeys(termcodes(m.rhs or ""), mode, false)
  end
  return ""
end

--- Run the non-expr Lua mapping M.fallback() left for its <Cmd>.
function M.run_pending()
  local callback = pending_callback
  pending_callback = nil
  if callback then
    callback()
  end
end

--- Map insert-mode `key` in `buf`: `action()` returns the keys to run (e.g. a <Cmd>)
--- when the plugin acts, or nil to let the key do what it did before.
function M.set(buf, key, action, desc)
  local raw = termcodes(key)
  saved[buf] = saved[buf] or {}
  if not saved[buf][raw] then
    local m = vim.api.nvim_buf_call(buf, function()
      return vim.fn.maparg(key, "i", false, true)
    end)
    local own = m.desc and vim.startswith(m.desc, DESC_PREFIX)
    saved[buf][raw] = { key = key, previous = (m.buffer == 1 and not own) and m or false }
  end
  vim.keymap.set("i", key, function()
    local keys = action()
    if keys then
      return termcodes(keys)
    end
    return M.fallback(buf, key)
  end, { buffer = buf, expr = true, replace_keycodes = false, desc = DESC_PREFIX .. desc })
end

--- Delete the plugin's keys in `buf` and put back the buffer-local mappings they replaced.
function M.restore(buf)
  local keys = saved[buf]
  saved[buf] = nil
  if not keys or not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  for _, entry in pairs(keys) do
    pcall(vim.keymap.del, "i", entry.key, { buffer = buf })
    if entry.previous then
      -- mapset() puts a buffer-local mapping in the current buffer.
      pcall(vim.api.nvim_buf_call, buf, function()
        vim.fn.mapset("i", false, entry.previous)
      end)
    end
  end
end

return M
