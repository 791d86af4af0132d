-- :checkhealth zi — the server binary, the connection, and the model.
-- The server has no LSP request that reports its model, so the model section runs
-- `zi-coder doctor` with the plugin's settings and shows its verdicts.
local config = require("zi.config")

local M = {}

-- The command without `serve` and what follows it: {"zi-coder"}, {"python", "-m", "server"}.
local function base_cmd(cmd)
  for i, arg in ipairs(cmd) do
    if arg == "serve" then
      return vim.list_slice(cmd, 1, i - 1)
    end
  end
  return { cmd[1] }
end

local function run(cmd, timeout_ms)
  local env = config.to_env(config.options.settings)
  local ok, proc = pcall(vim.system, cmd, { text = true, env = env })
  if not ok then
    return nil, tostring(proc)
  end
  local result = proc:wait(timeout_ms)
  if result.code == 124 then -- vim.system's code for a process it killed on timeout
    return nil, ("timed out after %d s"):format(timeout_ms / 1000)
  end
  return result
end

local function check_binary(cmd)
  vim.health.start("zi: server binary")
  local exe = vim.fn.exepath(cmd[1])
  if exe == "" then
    vim.health.error(("`%s` not found"):format(cmd[1]), {
      "Install Zi Coder from its checkout: `uv tool install <path to the zi-coder checkout>`"
        .. " (puts `zi-coder` in ~/.local/bin, which must be on your PATH)",
      "or point `cmd` in require('zi').setup() at it,"
        .. " e.g. { '/path/to/zi-coder/.venv/bin/zi-coder', 'serve' }",
    })
    return false
  end
  local result, err = run(vim.list_extend(base_cmd(cmd), { "--version" }), 10000)
  if not result or result.code ~= 0 then
    vim.health.error(("`%s --version` failed: %s"):format(exe, err or vim.trim(result.stderr)))
    return false
  end
  vim.health.ok(("%s (%s)"):format(vim.trim(result.stdout), exe))
  return true
end

local function check_connection()
  vim.health.start("zi: connection")
  local clients = vim.lsp.get_clients({ name = require("zi").name })
  if #clients == 0 then
    vim.health.warn("no Zi client is running", "open a file whose filetype is configured")
    return
  end
  for _, client in ipairs(clients) do
    if not client.initialized or client:is_stopped() then
      vim.health.warn(("client %d is not connected (starting or stopped)"):format(client.id))
    else
      local info = client.server_info or {}
      local buffers = vim.tbl_keys(client.attached_buffers)
      vim.health.ok(
        ("client %d connected to %s %s, %d buffer(s), root %s"):format(
          client.id,
          info.name or "?",
          info.version or "?",
          #buffers,
          client.root_dir or "(none: single files)"
        )
      )
    end
  end
  if require("zi").has_builtin_inline() then
    vim.health.info("ghost text: Neovim's built-in vim.lsp.inline_completion")
  else
    vim.health.info("ghost text: zi's extmarks (Neovim 0.11)")
  end
end

local function check_model(cmd)
  vim.health.start("zi: model (zi-coder doctor)")
  local inference = config.options.settings.inference or {}
  vim.health.info(
    ("configured: url %s, model %s"):format(
      inference.url or "(from the environment)",
      inference.model or "(from the environment, or the first one served)"
    )
  )
  local result, err = run(vim.list_extend(base_cmd(cmd), { "doctor" }), 30000)
  if not result then
    vim.health.error("`zi-coder doctor` did not run: " .. err)
    return
  end
  -- Doctor prints "  <verdict> <check> <detail>" lines, then a summary.
  local report = { ok = vim.health.ok, warn = vim.health.warn, FAIL = vim.health.error }
  for line in vim.gsplit(result.stdout, "\n", { plain = true, trimempty = true }) do
    local verdict, rest = line:match("^%s+(%S+)%s+(.*)$")
    if verdict then
      (report[verdict] or vim.health.info)(verdict == "skip" and "skip: " .. rest or rest)
    end
  end
  if result.code ~= 0 and result.stderr ~= "" then
    vim.health.error(vim.trim(result.stderr))
  end
end

function M.check()
  local cmd = config.options.cmd
  if check_binary(cmd) then
    check_connection()
    check_model(cmd)
  end
end

return M
