-- Keystroke → ghost text in headless Neovim 0.11 with the plugin of client-neovim/,
-- for bench/editors.py (which starts it and reads the report). Run as
--   nvim --headless -u NONE -i NONE -n --cmd "set rtp^=client-neovim" -c "luafile THIS"
--
-- The file's cursor line is `    total = a` (insert mode at its end). Each round types
-- one letter (the model path: the model answers `_<column>` for every prompt, never
-- starting with a letter, so the server's type-ahead cannot answer), waits for the
-- ghost text, then types `_`, the suggestion's first character (the server's
-- type-ahead answers the rest, no model call), and waits again. Keys go in with
-- nvim_input, Neovim's own input queue, and are handled by its main loop as typed.
--
-- Times are vim.uv.hrtime() in this process: `key` just before nvim_input; `on_key`
-- when Neovim handled the key (vim.on_key); `request` when the plugin sent
-- textDocument/inlineCompletion (after its debounce) and `response` when the answer's
-- handler ran (the client's `request` method wrapped on this client object); `shown`
-- right after the plugin set the ghost text extmark (zi.ghost.show wrapped: the plugin
-- calls it through the module table); `cleared` when the ghost text shown before was
-- taken down (zi.ghost.clear wrapped). A poll every 1 ms (`polled`) confirms the
-- extmark is there. Nothing in the plugin is changed.
--
-- Environment: ZI_BENCH_SERVER_CMD (JSON list), ZI_BENCH_FILE, ZI_BENCH_REPORT,
-- ZI_BENCH_ROUNDS (measured), ZI_BENCH_WARMUP.
local uv = vim.uv
local report = { ok = false, samples = {}, log = {} }
local finished = false

local function log(fmt, ...)
  local line = select("#", ...) > 0 and fmt:format(...) or fmt
  report.log[#report.log + 1] = line
  io.stdout:write(("[nvim %s] %s\n"):format(os.date("%H:%M:%S"), line))
end

local function finish(ok, err)
  if finished then
    return
  end
  finished = true
  report.ok, report.error = ok, err
  if err then
    log("FAILED: %s", err)
  end
  local f = assert(io.open(assert(os.getenv("ZI_BENCH_REPORT")), "w"))
  f:write(vim.json.encode(report))
  f:close()
  -- :qall! runs the plugin's VimLeavePre, which waits for the server to write history.
  vim.schedule(function()
    vim.cmd(ok and "qall!" or "cquit 1")
  end)
end

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    finish(false, debug.traceback(co, err))
  elseif coroutine.status(co) == "dead" then
    finish(true)
  end
end

--- Yield to the main loop until cond() is truthy (polled every `every_ms`).
local function wait(what, cond, timeout_ms, every_ms)
  local co = assert(coroutine.running())
  local deadline = uv.now() + (timeout_ms or 30000)
  local function poll()
    local ok, value = pcall(cond)
    if ok and value then
      return resume(co, value)
    end
    if uv.now() >= deadline then
      return resume(co, nil, ok and "timed out" or value)
    end
    vim.defer_fn(poll, every_ms or 10)
  end
  vim.defer_fn(poll, 0)
  local value, problem = coroutine.yield()
  if value == nil then
    error(("waiting for %s: %s"):format(what, problem), 0)
  end
  return value
end

local function sleep(ms)
  local co = assert(coroutine.running())
  vim.defer_fn(function()
    resume(co, true)
  end, ms)
  coroutine.yield()
end

-- The stamps of the round in progress.
local current = nil

local ghost = require("zi.ghost")
local show = ghost.show
ghost.show = function(buf, row, col, text, hl)
  local mark = show(buf, row, col, text, hl)
  if current and not current.shown then
    current.shown = uv.hrtime()
    current.text = text
  end
  return mark
end

-- A ghost text taken down while the round's key is handled (the plugin dismisses it on
-- any edit), before the new one is set: how long none shows.
local clear = ghost.clear
ghost.clear = function(buf)
  if current and current.key and not current.cleared and not current.shown then
    if #vim.api.nvim_buf_get_extmarks(buf, ghost.ns, 0, -1, {}) > 0 then
      current.cleared = uv.hrtime()
    end
  end
  return clear(buf)
end

vim.on_key(function()
  if current and current.key and not current.on_key then
    current.on_key = uv.hrtime()
  end
end)

local function wrap_requests(client)
  local request = client.request
  client.request = function(self, method, params, handler, bufnr)
    if method ~= "textDocument/inlineCompletion" or not current then
      return request(self, method, params, handler, bufnr)
    end
    local round = current
    round.requests = (round.requests or 0) + 1
    round.request = uv.hrtime()
    return request(self, method, params, function(...)
      round.response = uv.hrtime()
      return handler(...)
    end, bufnr)
  end
end

local function ms(from, to)
  return from and to and (to - from) / 1e6 or vim.NIL
end

local function round_trip(buf, key, expected)
  current = { kind = key == "_" and "typeahead" or "model", expected = expected }
  local ns = ghost.ns
  current.key = uv.hrtime()
  vim.api.nvim_input(key)
  wait(("ghost text %q after %q"):format(expected, key), function()
    local marks = vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
    local m = marks[1]
    return m and m[4].virt_text and m[4].virt_text[1][1] == expected
  end, 30000, 1)
  local polled = uv.hrtime()
  local r = current
  current = nil
  local s = require("zi.inline").current(buf)
  return {
    kind = r.kind,
    key = key,
    expected = expected,
    text = r.text,
    id = s and s.id,
    requests = r.requests or 0,
    on_key_ms = ms(r.key, r.on_key),
    request_ms = ms(r.key, r.request),
    response_ms = ms(r.key, r.response),
    shown_ms = ms(r.key, r.shown),
    polled_ms = ms(r.key, polled),
    rpc_ms = ms(r.request, r.response),
    render_ms = ms(r.response, r.shown),
    cleared_ms = ms(r.key, r.cleared),
    hidden_ms = ms(r.cleared, r.shown),
  }
end

local function run()
  local rounds = tonumber(os.getenv("ZI_BENCH_ROUNDS") or "30")
  local warmup = tonumber(os.getenv("ZI_BENCH_WARMUP") or "3")
  vim.cmd("filetype on")
  vim.o.expandtab = true
  vim.o.shiftwidth = 4
  vim.o.showmode = false
  -- The plugin's defaults (debounce_ms included): the editor as a user gets it.
  require("zi").setup({ cmd = vim.json.decode(assert(os.getenv("ZI_BENCH_SERVER_CMD"))) })
  report.debounce_ms = require("zi.config").options.debounce_ms
  local v = vim.version()
  report.nvim = ("%d.%d.%d"):format(v.major, v.minor, v.patch)
  vim.cmd.edit(vim.fn.fnameescape(assert(os.getenv("ZI_BENCH_FILE"))))
  local buf = vim.api.nvim_get_current_buf()
  local started = uv.hrtime()
  local client = wait("the zi client to attach", function()
    local c = vim.lsp.get_clients({ bufnr = buf, name = "zi" })[1]
    return c and c.initialized and c
  end, 60000)
  report.attach_ms = ms(started, uv.hrtime())
  wrap_requests(client)
  -- The cursor line: the last one, `    total = a`; insert mode at its end.
  local last = vim.api.nvim_buf_line_count(buf)
  vim.api.nvim_win_set_cursor(0, { last, #vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] })
  vim.api.nvim_input("A")
  wait("insert mode", function()
    return vim.api.nvim_get_mode().mode == "i"
  end)
  local letters = "bcdefghijklmnopqrstuvwxyz"
  for i = 1, warmup + rounds do
    local letter = letters:sub((i - 1) % #letters + 1, (i - 1) % #letters + 1)
    local column = #vim.api.nvim_get_current_line() + 1 -- after the letter
    local first = round_trip(buf, letter, "_" .. column)
    first.warmup = i <= warmup
    report.samples[#report.samples + 1] = first
    sleep(100) -- zi/didShowCompletion goes out; a user never types this evenly anyway
    local second = round_trip(buf, "_", tostring(column))
    second.warmup = i <= warmup
    report.samples[#report.samples + 1] = second
    sleep(100)
  end
  log("%d rounds done", warmup + rounds)
  vim.api.nvim_input("<Esc>")
  sleep(50)
end

vim.defer_fn(function()
  finish(false, "the bench script took longer than 300 s")
end, 300000)
resume(coroutine.create(run))
