-- Inline completion for Neovim 0.11, which has no built-in client for it:
-- textDocument/inlineCompletion after a pause in typing, the item as ghost text,
-- keys to accept it all, a word or a line, and the acceptance events Zi records
-- (zi/didShowCompletion, zi/didPartiallyAcceptCompletion, the item's command).
local config = require("zi.config")
local ghost = require("zi.ghost")
local keymap = require("zi.keymap")
local text = require("zi.text")

local M = {}

local AUTOMATIC, INVOKED = 2, 1 -- InlineCompletionTriggerKind
local REQUEST_CANCELLED = -32800

---@class zi.Suggestion
---@field client_id integer
---@field id string? the completion id: the first argument of the item's command
---@field command lsp.Command?
---@field text string what is still to be inserted
---@field row integer where it is drawn (0-based)
---@field col integer byte column
---@field tick integer b:changedtick when it was drawn; our own edits move it on
---@field line string the text of its row when it was drawn
---@field accepted integer characters accepted so far by partial accepts

local suggestions = {} ---@type table<integer, zi.Suggestion>
local timers = {} ---@type table<integer, uv.uv_timer_t>
local pending = {} ---@type table<integer, {client: vim.lsp.Client, id: integer}>

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function in_insert_mode()
  return vim.api.nvim_get_mode().mode:sub(1, 1) == "i"
end

-- The built-in completion menu is open: keys and the cursor line belong to it.
local function menu_open()
  return vim.fn.pumvisible() == 1
end

local function cancel_pending(buf)
  local p = pending[buf]
  pending[buf] = nil
  if p and not p.client:is_stopped() then
    p.client:cancel_request(p.id) -- Zi closes the model stream at once
  end
end

--- The suggestion shown in `buf`, if any (for keys, statuslines and tests).
function M.current(buf)
  return suggestions[(buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf]
end

function M.dismiss(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  suggestions[buf] = nil
  cancel_pending(buf)
  if timers[buf] then
    timers[buf]:stop()
  end
  ghost.clear(buf)
end

local function line_at(buf, row)
  return vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
end

local function show(buf, client, s)
  s.line = line_at(buf, s.row)
  suggestions[buf] = s
  ghost.show(buf, s.row, s.col, s.text, config.options.hl_group)
  if s.id then
    client:notify("zi/didShowCompletion", { id = s.id })
  end
end

-- The item's text as it should appear at the cursor, or nil if it does not fit there.
-- Zi's items start at the cursor; an item whose range starts earlier on the line
-- repeats what was typed since, which is stripped.
local function text_at_cursor(buf, item, row, col, encoding)
  local insert = text.insert_text(item)
  if not item.range then
    return insert
  end
  local start, stop = item.range.start, item.range["end"]
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  local start_col = vim.str_byteindex(line, encoding, start.character, false)
  local stop_col = vim.str_byteindex(line, encoding, stop.character, false)
  if start.line ~= row or stop.line ~= row or stop_col ~= col or start_col > col then
    return nil -- replaces text after the cursor or elsewhere: not shown as ghost text
  end
  local typed = line:sub(start_col + 1, col)
  if insert:sub(1, #typed) ~= typed then
    return nil
  end
  return insert:sub(#typed + 1)
end

local function request(buf, trigger)
  if buf ~= vim.api.nvim_get_current_buf() or not in_insert_mode() or menu_open() then
    return
  end
  local client = vim.lsp.get_clients({ bufnr = buf, name = "zi" })[1]
  if not client then
    return
  end
  cancel_pending(buf)
  local row, col = cursor()
  local tick = vim.b[buf].changedtick
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = trigger }
  local ok, id = client:request("textDocument/inlineCompletion", params, function(err, result)
    if pending[buf] and pending[buf].id == id then
      pending[buf] = nil
    end
    if err then
      if err.code ~= REQUEST_CANCELLED then
        vim.notify_once("zi: inline completion failed: " .. err.message, vim.log.levels.WARN)
      end
      return
    end
    -- Drop answers to a question that is no longer asked: the user typed or moved on.
    local now_row, now_col = cursor()
    if
      not vim.api.nvim_buf_is_valid(buf)
      or buf ~= vim.api.nvim_get_current_buf()
      or not in_insert_mode()
      or menu_open()
      or vim.b[buf].changedtick ~= tick
      or now_row ~= row
      or now_col ~= col
    then
      return
    end
    local item = result and (result.items or result)[1]
    local insert = item and text_at_cursor(buf, item, row, col, client.offset_encoding)
    if not insert or insert == "" then
      return
    end
    show(buf, client, {
      client_id = client.id,
      id = item.command and item.command.arguments and item.command.arguments[1],
      command = item.command,
      text = insert,
      row = row,
      col = col,
      tick = tick,
      accepted = 0,
    })
  end, buf)
  if ok and id then
    pending[buf] = { client = client, id = id }
  end
end

--- Ask for a suggestion after the debounce; `invoked` asks even in the middle of a word.
function M.schedule(buf, invoked)
  local timer = timers[buf]
  if not timer then
    timer = assert(vim.uv.new_timer())
    timers[buf] = timer
  end
  timer:stop()
  local delay = invoked and 0 or config.options.debounce_ms
  timer:start(delay, 0, vim.schedule_wrap(function()
    request(buf, invoked and INVOKED or AUTOMATIC)
  end))
end

-- Whether `s` is still where it was drawn: the cursor at its start and the text
-- unchanged since (our own partial accepts move both on with it).
local function in_place(buf, s)
  local row, col = cursor()
  return row == s.row and col == s.col and vim.b[buf].changedtick == s.tick
end

-- Text changed or the cursor moved: the suggestion no longer applies, unless the
-- change is our own partial accept, which leaves the cursor where the rest is drawn.
-- With the completion menu open, Neovim sends TextChangedP instead of TextChangedI
-- and no CursorMovedI.
--
-- Typing the suggestion's own next characters keeps the rest shown at once, as VS
-- Code does, instead of clearing it for a debounce and a round trip (the request
-- still goes out: Zi answers it from its type-ahead and records what was typed).
local function typed_through(buf, s)
  local row, col = cursor()
  local typed = s.text:sub(1, col - s.col)
  if row ~= s.row or col <= s.col or col - s.col >= #s.text or typed:find("\n", 1, true) then
    return false
  end
  local line = line_at(buf, row)
  if line ~= s.line:sub(1, s.col) .. typed .. s.line:sub(s.col + 1) then
    return false
  end
  s.text, s.col, s.line, s.tick = s.text:sub(#typed + 1), col, line, vim.b[buf].changedtick
  ghost.show(buf, s.row, s.col, s.text, config.options.hl_group)
  return true
end

local function on_edit(buf)
  local s = suggestions[buf]
  if s then
    if in_place(buf, s) then
      return
    end
    if not typed_through(buf, s) then
      M.dismiss(buf)
    end
  end
  M.schedule(buf, false)
end

local function insert_at(buf, s, piece)
  local lines = vim.split(piece, "\n", { plain = true })
  vim.api.nvim_buf_set_text(buf, s.row, s.col, s.row, s.col, lines)
  local row = s.row + #lines - 1
  local col = (#lines == 1 and s.col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { row + 1, col })
  return row, col
end

--- Accept the shown suggestion: "all", or one "word" or "line" of it.
function M.accept(how)
  local buf = vim.api.nvim_get_current_buf()
  local s = suggestions[buf]
  local client = s and vim.lsp.get_client_by_id(s.client_id)
  if not s or not client then
    return false
  end
  if not in_place(buf, s) then -- a change no autocommand reported: never insert it elsewhere
    M.dismiss(buf)
    return false
  end
  local piece = how == "word" and text.next_word(s.text)
    or how == "line" and text.next_line(s.text)
    or s.text
  s.row, s.col = insert_at(buf, s, piece)
  s.line = line_at(buf, s.row)
  s.text = s.text:sub(#piece + 1)
  s.accepted = s.accepted + vim.fn.strchars(piece)
  s.tick = vim.b[buf].changedtick
  if s.text == "" then
    -- All of it, at once or piece by piece: the item's command records the acceptance.
    M.dismiss(buf)
    if s.command then
      client:exec_cmd(s.command, { bufnr = buf })
    end
  else
    if s.id then
      client:notify("zi/didPartiallyAcceptCompletion", { id = s.id, acceptedLength = s.accepted })
    end
    ghost.show(buf, s.row, s.col, s.text, config.options.hl_group)
  end
  return true
end

-- An insert-mode key that acts on a shown suggestion and otherwise does what it
-- did before (zi.keymap). An expr mapping cannot edit the buffer (textlock), so it
-- returns a <Cmd> that does. While the completion menu is open the key is the
-- menu's; a suggestion that is no longer in place is dismissed, and the key falls
-- through.
local function as_list(lhs)
  return type(lhs) == "table" and lhs or { lhs }
end

local function map(buf, lhs, action, desc, always)
  for _, key in ipairs(as_list(lhs)) do
    keymap.set(buf, key, function()
      local s = suggestions[buf]
      if not s then
        return nil
      end
      if always or (in_place(buf, s) and not menu_open()) then
        return "<Cmd>lua require('zi.inline')." .. action .. "<CR>"
      end
      if not in_place(buf, s) then
        vim.schedule(function()
          if suggestions[buf] == s then
            M.dismiss(buf)
          end
        end)
      end
      return nil
    end, desc)
  end
end

function M.attach(client, buf)
  local group = vim.api.nvim_create_augroup("zi.inline." .. buf, { clear = true })
  vim.api.nvim_create_autocmd({ "InsertEnter", "TextChangedI", "TextChangedP", "CursorMovedI" }, {
    group = group,
    buffer = buf,
    callback = function()
      on_edit(buf)
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = buf,
    callback = function()
      M.dismiss(buf)
    end,
  })
  vim.api.nvim_create_autocmd({ "LspDetach", "BufUnload" }, {
    group = group,
    buffer = buf,
    callback = function(ev)
      if ev.event == "LspDetach" and ev.data.client_id ~= client.id then
        return
      end
      M.detach(buf)
    end,
  })

  local keys = config.options.keys
  if keys.accept then
    map(buf, keys.accept, "accept('all')", "accept the suggestion")
  end
  if keys.accept_word then
    map(buf, keys.accept_word, "accept('word')", "accept the next word")
  end
  if keys.accept_line then
    map(buf, keys.accept_line, "accept('line')", "accept the next line")
  end
  if keys.dismiss then
    map(buf, keys.dismiss, "dismiss()", "dismiss the suggestion", true)
  end
  for _, key in ipairs(keys.suggest and as_list(keys.suggest) or {}) do
    keymap.set(buf, key, function()
      return ("<Cmd>lua require('zi.inline').schedule(%d, true)<CR>"):format(buf)
    end, "suggest now")
  end
end

function M.detach(buf)
  M.dismiss(buf)
  keymap.restore(buf)
  if timers[buf] then
    timers[buf]:close()
    timers[buf] = nil
  end
  pcall(vim.api.nvim_del_augroup_by_name, "zi.inline." .. buf)
end

return M
