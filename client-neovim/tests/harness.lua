-- Test harness for headless Neovim, run as `nvim --headless -u NONE -c "luafile SCRIPT"`.
--
-- Keys go in through nvim_input and are handled by Neovim's main loop, as if typed,
-- so insert mode, mappings and autocommands run for real. A test is a function run
-- in a coroutine; H.wait() yields to the main loop until a condition holds (polled
-- every 10 ms), so nothing sleeps longer than needed. Its default limit is generous
-- (30 s): on a loaded 2-CPU machine the server's first answer alone (imports, then
-- resolving the model) has taken over 10 s.
--
-- Environment (set by tests/e2e/test_neovim.py):
--   ZI_TEST_SERVER_CMD  JSON list: how to start the language server
--   ZI_TEST_FILE        the file to edit
--   ZI_TEST_REPORT      where to write the JSON report: {ok, error, seen, log}
local H = {}

local report = { ok = false, seen = {}, log = {} }
local finished = false

function H.log(fmt, ...)
  local line = select("#", ...) > 0 and fmt:format(...) or fmt
  report.log[#report.log + 1] = line
  io.stdout:write(("[nvim %s] %s\n"):format(os.date("%H:%M:%S"), line))
end

--- Record an observation under `name` for pytest to assert on; returns it.
function H.see(name, value)
  report.seen[name] = value
  H.log("%s = %s", name, vim.inspect(value, { newline = " ", indent = "" }))
  return value
end

local function finish(ok, err)
  if finished then
    return
  end
  finished = true
  report.ok, report.error = ok, err
  if err then
    H.log("FAILED: %s", err)
  end
  local f = assert(io.open(assert(os.getenv("ZI_TEST_REPORT")), "w"))
  f:write(vim.json.encode(report))
  f:close()
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

--- Wait until `cond()` returns a truthy value (returned), or fail after `timeout_ms`.
function H.wait(what, cond, timeout_ms)
  timeout_ms = timeout_ms or 30000
  local co = assert(coroutine.running(), "H.wait runs inside H.run")
  local deadline = vim.uv.now() + timeout_ms
  local function poll()
    local ok, value = pcall(cond)
    if ok and value then
      return resume(co, value)
    end
    if vim.uv.now() >= deadline then
      return resume(co, nil, ok and "timed out" or value)
    end
    vim.defer_fn(poll, 10)
  end
  vim.defer_fn(poll, 0)
  local value, problem = coroutine.yield()
  if value == nil then
    error(("waiting for %s: %s after %d ms"):format(what, problem, timeout_ms), 0)
  end
  return value
end

--- Type keys as a user would (<Tab>, <Esc>, <M-w> notation); handled once we yield.
function H.type(keys)
  H.log("type %s", keys)
  vim.api.nvim_input(keys)
end

function H.expect(cond, fmt, ...)
  if not cond then
    error(fmt:format(...), 0)
  end
end

function H.lines(buf)
  return vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false)
end

--- The ghost text in the buffer: one entry per extmark of zi's namespace.
function H.ghosts(buf)
  local ns = require("zi.ghost").ns
  local out = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(buf or 0, ns, 0, -1, { details = true })) do
    local d = m[4]
    local virt_lines = {}
    for _, chunks in ipairs(d.virt_lines or {}) do
      virt_lines[#virt_lines + 1] = chunks[1][1]
    end
    out[#out + 1] = {
      row = m[2],
      col = m[3],
      text = d.virt_text and d.virt_text[1][1],
      pos = d.virt_text_pos,
      virt_lines = virt_lines,
    }
  end
  return out
end

--- The cursor as {row, col}, both 0-based (col in bytes), like extmarks.
function H.cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return { pos[1] - 1, pos[2] }
end

--- Set up zi against the test server, open ZI_TEST_FILE and wait until it is attached.
function H.open(opts)
  vim.cmd("filetype on")
  vim.o.expandtab = true -- typed <Tab>s and the suggestions' indentation both use spaces
  vim.o.shiftwidth = 4
  vim.o.showmode = false -- "-- INSERT --" would land in the middle of the log
  require("zi").setup(vim.tbl_deep_extend("force", {
    cmd = vim.json.decode(assert(os.getenv("ZI_TEST_SERVER_CMD"))),
    debounce_ms = 20,
  }, opts or {}))
  vim.cmd.edit(vim.fn.fnameescape(assert(os.getenv("ZI_TEST_FILE"))))
  local buf = vim.api.nvim_get_current_buf()
  local client = H.wait("the zi client to attach", function()
    local c = vim.lsp.get_clients({ bufnr = buf, name = "zi" })[1]
    return c and c.initialized and c
  end)
  H.log("attached: client %d, %s %s", client.id, client.server_info.name, client.server_info.version)
  return buf, client
end

--- Run `test` in a coroutine; the report is written and Neovim quits when it ends.
--- Quitting is a plain :qall!, as a user would: the plugin's VimLeavePre waits for
--- the server to exit, which writes the history database that pytest reads next.
function H.run(test)
  vim.defer_fn(function()
    finish(false, "the test script took longer than 90 s")
  end, 90000)
  resume(coroutine.create(test))
end

return H
