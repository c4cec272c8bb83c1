package roomlog

// aliveCheck is the Lua prelude of the scripts that read or set a room's
// alive marker, "<LASTSAVE>|<run_id>" of the Redis process that set it.
// LASTSAVE (under a µs in a script) changes at every start and every RDB
// save; run_id (INFO server, ~7 µs) only at a start. A send reads LASTSAVE
// alone while the marker is fresh; INFO runs once per room after a start
// or a save. A process that starts within the second of the last save or
// start of the one that set a marker would take that marker for its own.
const aliveCheck = `
local function runID()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
local function bootMark()
  return tostring(redis.call('LASTSAVE')) .. '|' .. runID()
end
-- alive: 'none' or 'other' (no marker of this process: fence), 'same'
-- (this process, before a save since); fresh when no save came since
local function alive(key)
  local m = redis.call('GET', key)
  if not m then return 'none', false end
  local ls = tostring(redis.call('LASTSAVE'))
  if string.sub(m, 1, #ls + 1) == ls .. '|' then return 'same', true end
  local rid = runID()
  if string.sub(m, -#rid - 1) == '|' .. rid then return 'same', false end
  return 'other', false
end
`
