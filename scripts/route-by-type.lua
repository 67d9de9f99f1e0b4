-- route-by-type.lua: on the receiving side, move each received file into a subfolder named
-- after its extension: photo.JPG -> jpg/photo.JPG, notes.txt -> txt/notes.txt.
--
-- Needs the move grant: the operator lists the receiving directory in move_dirs. Files stay
-- inside that directory; an existing file of the same name is never overwritten (the move
-- fails with an error and the file stays where it was received).
--
-- Settings:
--   no_extension   the subfolder for files without an extension (default "other")

local fallback = p2p.settings.no_extension or "other"

p2p.on("complete", function(file, outcome)
  if file.side ~= "receive" or not outcome.ok then
    return
  end
  -- The extension of the last path component only: "v1.2/readme" has none.
  local ext = file.path:match("%.([%w_%-]+)$")
  local folder = ext and ext:lower() or fallback
  local moved_to = p2p.move(outcome.local_path, folder)
  p2p.log(string.format("moved %s to %s", file.path, moved_to))
end)
