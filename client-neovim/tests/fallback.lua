-- With no suggestion shown, the plugin's keys run what was mapped to them before:
-- a global <Tab> that remaps to a <Plug> mapping (as luasnip's does), a global Lua
-- expr mapping whose "<Tab>" is not remapped, and a buffer-local Lua callback made
-- before the client attached. With a suggestion shown, <Tab> still accepts it. When
-- the client detaches, the plugin's keys go and the buffer-local mapping is back.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

local function count(name)
  return function()
    vim.g[name] = (vim.g[name] or 0) + 1
  end
end

H.run(function()
  vim.cmd([[
    imap <Tab> <Plug>(user-tab)
    inoremap <Plug>(user-tab) <Cmd>let g:user_tab = get(g:, 'user_tab', 0) + 1<CR>
  ]])
  vim.keymap.set("i", "<C-]>", function()
    count("user_bracket")()
    return "<Tab>" -- noremap: an indent, not the <Tab> mapping above
  end, { expr = true })
  vim.api.nvim_create_autocmd("FileType", {
    callback = function(ev)
      vim.keymap.set("i", "<M-l>", count("user_line"), { buffer = ev.buf, desc = "user's" })
    end,
  })
  local buf, client = H.open()

  H.type("Go    ")
  H.wait("ghost text", function()
    return #H.ghosts(buf) > 0
  end)
  H.type("<C-]>") -- shown: Zi's dismiss, not the user's mapping
  H.wait("no ghost text after <C-]>", function()
    return #H.ghosts(buf) == 0
  end)
  H.see("after_dismiss", { line = H.lines(buf)[2], user_bracket = vim.g.user_bracket or 0 })

  H.type("<Tab>")
  H.wait("the user's global <Tab>", function()
    return vim.g.user_tab == 1
  end, 10000)
  H.type("<M-l>")
  H.wait("the user's buffer-local <M-l>", function()
    return vim.g.user_line == 1
  end, 10000)
  H.see("nothing_shown", { line = H.lines(buf)[2], ghosts = H.ghosts(buf) })

  H.type("<C-]>")
  H.wait("the user's <C-]>", function()
    return vim.g.user_bracket == 1 and H.lines(buf)[2] ~= "    "
  end, 10000)
  H.see("user_bracket", { line = H.lines(buf)[2], user_tab = vim.g.user_tab })

  H.wait("ghost text after the indent", function()
    return #H.ghosts(buf) > 0
  end)
  H.type("<Tab>")
  H.wait("the suggestion in the buffer", function()
    return H.lines(buf)[2] ~= "        "
  end)
  H.see("accepted", { line = H.lines(buf)[2], user_tab = vim.g.user_tab })

  vim.lsp.buf_detach_client(buf, client.id)
  H.wait("the plugin's <Tab> to go", function()
    return vim.fn.maparg("<Tab>", "i", false, true).buffer == 0
  end)
  H.type("<M-l>")
  H.wait("the user's <M-l> after detaching", function()
    return vim.g.user_line == 2
  end, 10000)
  local tab = vim.fn.maparg("<Tab>", "i", false, true)
  local line = vim.fn.maparg("<M-l>", "i", false, true)
  H.see("after_detach", {
    tab = { buffer = tab.buffer, rhs = tab.rhs },
    line = { buffer = line.buffer, desc = line.desc },
    bracket = vim.fn.maparg("<C-]>", "i", false, true).buffer,
  })
end)
