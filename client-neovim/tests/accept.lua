-- Ghost text appears at the cursor; <Tab> inserts all of it and reports the acceptance.
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

H.run(function()
  -- A setting only the model request shows: proves initializationOptions reach the server.
  local buf = H.open({ settings = { inference = { temperature = 0.125 } } })

  H.type("Go    ") -- a new, indented line: the function's empty body
  H.wait("ghost text", function()
    return #H.ghosts(buf) > 0
  end)
  H.see("cursor", H.cursor())
  H.see("ghosts", H.ghosts(buf))
  H.see("id", require("zi.inline").current(buf).id)

  H.type("<Tab>")
  H.wait("the suggestion in the buffer", function()
    return H.lines(buf)[2] ~= "    "
  end)
  H.see("lines", H.lines(buf))
  H.see("cursor_after", H.cursor())
  H.see("ghosts_after", H.ghosts(buf))

  -- A later settings change reaches the server without a restart; it says so.
  local messages = {}
  local log_message = vim.lsp.handlers["window/logMessage"]
  vim.lsp.handlers["window/logMessage"] = function(err, result, ctx)
    messages[#messages + 1] = result.message
    return log_message(err, result, ctx)
  end
  require("zi").update_settings({ inference = { temperature = 0.25 } })
  H.see("settings_message", H.wait("the server to apply the new settings", function()
    return vim.iter(messages):find(function(m)
      return m:find("settings updated", 1, true)
    end)
  end))
end)
