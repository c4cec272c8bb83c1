package roomlog

// aliveCheck is the Lua prelude of the scripts that read or set a room's
// alive marker, "<LASTSAVE>|<run_id>" of the Redis process that set it. A
// marker is this process's only if its run_id is this process's: INFO
// server, ~8 µs a script call (BENCHMARKS.md round 7). The LASTSAVE part no
// longer decides anything; it stays so that the scripts of a build before
// this one, which read it first, still take this build's markers for what
// they are during a rolling upgrade. Those scripts trusted a matching
// LASTSAVE alone, so a process started within the same second as the last
// start or RDB save of the one that set a marker (a replica started with
// its master, say) took that marker for its own and did not fence.
const aliveCheck = `
local function runID()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
local function bootMark()
  return tostring(redis.call('LASTSAVE')) .. '|' .. runID()
end
-- alive: whether key holds a marker of this process (no marker, or
-- another process's: fence)
local function alive(key)
  local m = redis.call('GET', key)
  if not m then return false end
  local rid = runID()
  return string.sub(m, -#rid - 1) == '|' .. rid
end
`
