-- notify.lua: log one summary line for every file sent or received.
--
-- The line goes through the host's log (RUST_LOG=info shows it), tagged with script=notify.

p2p.on("complete", function(file, outcome)
  local verb = file.side == "send" and "sent" or "received"
  if outcome.ok then
    p2p.log(string.format("%s %s (%d bytes) at %s", verb, file.path, file.size, outcome.local_path))
  else
    p2p.log(string.format("not %s: %s (%d bytes): %s", verb, file.path, file.size, outcome.error))
  end
end)
