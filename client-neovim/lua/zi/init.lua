-- Zi Coder for Neovim: starts `zi-coder serve` with vim.lsp and shows its inline
-- completions as ghost text. Diagnostics, quick fixes (code actions, `gra`) and
-- plain completion are Neovim's own LSP features; nothing here duplicates them.
local config = require("zi.config")

local M = {}

M.name = "zi"

-- Neovim 0.12 ships a client for textDocument/inlineCompletion; 0.11 needs ours.
function M.has_builtin_inline()
  return vim.lsp.inline_completion ~= nil
end

local function on_attach(client, buf)
  if not M.has_builtin_inline() then
    require("zi.inline").attach(client, buf)
    return
  end
  vim.lsp.inline_completion.enable(true, { bufnr = buf })
  local accept = config.options.keys.accept or {}
  for _, key in ipairs(type(accept) == "table" and accept or { accept }) do
    -- get() accepts the shown item (running its command, so Zi records it) and
    -- returns false when there is none: the key then does what it did before.
    require("zi.keymap").set(buf, key, function()
      return vim.lsp.inline_completion.get() and "" or nil
    end, "accept the suggestion")
  end
end

function M.setup(opts)
  if vim.fn.has("nvim-0.11") == 0 then
    vim.notify("zi: needs Neovim 0.11 or later", vim.log.levels.ERROR)
    return
  end
  local o = config.set(opts)
  -- vim.lsp.enable() says nothing when the server cannot be started.
  if type(o.cmd) == "table" and vim.fn.executable(o.cmd[1]) == 0 then
    vim.notify_once(
      ("zi: '%s' not found; install it or set `cmd` (see :checkhealth zi)"):format(o.cmd[1]),
      vim.log.levels.WARN
    )
  end
  vim.api.nvim_set_hl(0, o.hl_group, { link = "Comment", default = true })

  -- Empty settings would be sent as a JSON list ([]); leave them out instead.
  local settings = next(o.settings) and { zi = o.settings } or nil
  vim.lsp.config(M.name, {
    cmd = o.cmd,
    filetypes = o.filetypes,
    root_markers = o.root_markers,
    init_options = settings, -- read by the server before it builds anything
    settings = settings, -- answers workspace/configuration (section "zi")
    capabilities = not M.has_builtin_inline()
        and { textDocument = { inlineCompletion = { dynamicRegistration = false } } }
      or nil,
  })

  local group = vim.api.nvim_create_augroup("zi", { clear = true })
  vim.api.nvim_create_autocmd("LspAttach", {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == M.name then
        on_attach(client, ev.buf)
      end
    end,
  })
  if M.has_builtin_inline() then -- on 0.11, zi.inline cleans up after itself
    vim.api.nvim_create_autocmd("LspDetach", {
      group = group,
      callback = function(ev)
        local client = vim.lsp.get_client_by_id(ev.data.client_id)
        if client and client.name == M.name then
          require("zi.keymap").restore(ev.buf)
        end
      end,
    })
  end
  vim.api.nvim_create_autocmd("VimLeavePre", {
    group = group,
    callback = function()
      M.stop(o.exit_timeout_ms)
    end,
  })
  vim.lsp.enable(M.name)
end

--- Stop Zi's servers and wait until they have exited (at most `timeout_ms`).
--- Neovim 0.11 quits without waiting for the answer to `shutdown`, and Zi writes its
--- history on shutdown: without this wait, the last suggestions and what became of
--- them are lost when Neovim quits right after an accept.
function M.stop(timeout_ms)
  local clients = vim.lsp.get_clients({ name = M.name })
  for _, client in ipairs(clients) do
    client:stop() -- no-op if vim.lsp's own VimLeavePre handler already asked
  end
  vim.wait(timeout_ms or 3000, function()
    for _, client in ipairs(clients) do
      if vim.lsp.get_client_by_id(client.id) then
        return false
      end
    end
    return true
  end, 10)
end

--- Change settings without a restart: the server re-reads them and applies what it can.
function M.update_settings(settings)
  config.options.settings = vim.tbl_deep_extend("force", config.options.settings, settings)
  local zi = { zi = config.options.settings }
  vim.lsp.config(M.name, { init_options = zi, settings = zi }) -- for servers started later
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    client.settings = zi
    client:notify("workspace/didChangeConfiguration", { settings = zi })
  end
end

return M
