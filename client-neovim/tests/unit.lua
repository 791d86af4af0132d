-- Pure functions of the plugin, table-driven (no server).
local H = dofile(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)) .. "/harness.lua")

H.run(function()
  local text = require("zi.text")
  local word_cases = {
    { "return a + b", "return" },
    { " a + b", " a" },
    { " + b", " +" },
    { "(x, y)", "(" },
    { "foo_bar2.baz", "foo_bar2" },
    { "\n    return x", "\n    " },
    { "  \n\tx", "  \n\t" },
    { "   ", "   " },
    { "café = 1", "café" }, -- Vim's keyword characters, not Lua's ASCII %w
    { "naïve(x)", "naïve" },
    { " Ωmega", " Ωmega" },
    { "é = 1", "é" },
    { "«x»", "«" },
  }
  for _, case in ipairs(word_cases) do
    local got = text.next_word(case[1])
    H.expect(got == case[2], "next_word(%q) = %q, want %q", case[1], got, case[2])
  end
  local line_cases = {
    { "total = a + b\n    return total", "total = a + b" },
    { "\n    return total", "\n    return total" },
    { "\n    x\n    y", "\n    x" },
    { "single", "single" },
  }
  for _, case in ipairs(line_cases) do
    local got = text.next_line(case[1])
    H.expect(got == case[2], "next_line(%q) = %q, want %q", case[1], got, case[2])
  end

  local env = require("zi.config").to_env({
    inference = { url = "http://h/v1", temperature = 0.5 },
    diagnostics = { languages = { "python", "go" }, review = false },
    database_url = "sqlite:///x",
  })
  H.see("env", env)
  H.see("cases", #word_cases + #line_cases)
end)
