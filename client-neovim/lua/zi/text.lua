-- Pure helpers: how much of a suggestion one partial accept takes.
local M = {}

-- The next word: leading blanks plus a run of word characters, or of punctuation;
-- at a line break, the break and the next line's indentation. Multi-byte characters
-- (all bytes >= 0x80) stay whole, since they never match %w, %s or _.
function M.next_word(s)
  return s:match("^[ \t]*[%w_]+")
    or s:match("^[ \t]*[^%w_%s]+")
    or s:match("^[ \t]*\r?\n[ \t]*")
    or s
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
