-- Pure helpers: how much of a suggestion one partial accept takes.
local M = {}

local WORD_PATTERNS = {
  [[\v^[ \t]*\k+]],
  [=[\v^[ \t]*[^[:keyword:] \t\r\n]+]=],
  [[\v^[ \t]*\r?\n[ \t]*]],
}

-- The next word: leading blanks plus a run of keyword characters (Vim's \k, so
-- "naïve" or "Ωmega" is one word, following the current buffer's 'iskeyword'), or a
-- run of other non-blank characters; at a line break, the break and the next line's
-- indentation. Byte strings: #word is in bytes, vim.fn.strchars(word) in characters.
function M.next_word(s)
  for _, pattern in ipairs(WORD_PATTERNS) do
    local word = vim.fn.matchstr(s, pattern)
    if word ~= "" then
      return word
    end
  end
  return s
end

-- The rest of the current line, without its line break; when the suggestion's
-- current line is already taken, the break and the whole next line.
function M.next_line(s)
  return s:match("^[^\n]+") or s:match("^\n[^\n]*") or s
end

-- The suggestion's text from an InlineCompletionItem. Zi sends plain strings; a
-- StringValue snippet from another server would be taken as is.
function M.insert_text(item)
  local text = item.insertText
  if type(text) == "table" then
    return text.value or ""
  end
  return text or ""
end

return M
