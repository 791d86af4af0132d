-- Options of require("zi").setup(): defaults, merging, and the server's view of them.
local M = {}

M.defaults = {
  -- How the language server is started (stdio).
  cmd = { "zi-coder", "serve" },
  -- The server's `zi` settings, nested like its ZI_* variables ({ inference = { url = ... } }).
  -- Sent as initializationOptions and answered on workspace/configuration (section "zi").
  settings = {},
  -- nil: every buffer that has a filetype (the server completes any language).
  filetypes = nil,
  root_markers = { ".git", "pyproject.toml", "package.json", "go.mod", "Cargo.toml" },
  -- Wait after the last keystroke before asking for a suggestion (Neovim 0.11 only;
  -- 0.12's built-in inline completion has its own timing).
  debounce_ms = 75,
  -- Insert-mode keys; false turns one off. Each falls through to its usual meaning
  -- when no suggestion is shown.
  keys = {
    accept = "<Tab>",
    accept_word = { "<M-w>", "<C-Right>" },
    accept_line = "<M-l>",
    dismiss = "<C-]>",
    suggest = "<M-\\>", -- ask now, even in the middle of a word (trigger kind Invoked)
  },
  hl_group = "ZiSuggestion", -- linked to Comment unless you define it
  -- On quitting, wait at most this long for the server to write its history.
  exit_timeout_ms = 3000,
}

M.options = vim.deepcopy(M.defaults)

function M.set(opts)
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  -- Lists are replaced, not merged index by index.
  if opts and opts.cmd then
    M.options.cmd = opts.cmd
  end
  if opts and opts.keys then
    M.options.keys = vim.tbl_extend("force", M.defaults.keys, opts.keys)
  end
  return M.options
end

-- The settings as ZI_* environment variables, for commands that read only the
-- environment (`zi-coder doctor`): { inference = { url = "u" } } -> ZI_INFERENCE__URL=u.
function M.to_env(settings, prefix, out)
  out = out or {}
  prefix = prefix or "ZI_"
  for key, value in pairs(settings or {}) do
    local name = prefix .. tostring(key):upper()
    if type(value) == "table" and not vim.islist(value) and next(value) ~= nil then
      M.to_env(value, name .. "__", out)
    elseif type(value) == "table" then
      out[name] = vim.json.encode(value) -- pydantic-settings parses lists as JSON
    else
      out[name] = tostring(value)
    end
  end
  return out
end

return M
