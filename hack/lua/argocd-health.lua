-- Runs one Argo CD health script the way Argo CD's util/lua/lua.go does, so tests see what Argo CD sees:
-- the object is the global `obj`; only the base, table and (safe) os libraries exist, and strings have no
-- methods (Argo CD opens no string library for scripts from argocd-cm); the returned table is the health,
-- and a status outside Argo CD's set becomes Unknown. Runs under Lua 5.1 (gopher-lua's dialect) and 5.4.
-- Usage: lua5.4 argocd-health.lua <health.lua>  < object.lua   (object.lua is a chunk `return { ... }`)
-- Prints the status on the first line and the message after it; exits 1 when the script fails.

local scriptPath = arg[1]
if scriptPath == nil then
  io.stderr:write("usage: argocd-health.lua <health.lua> < object.lua\n")
  os.exit(2)
end

local function compile(source, name, env)
  if setfenv then -- Lua 5.1
    local chunk, err = loadstring(source, name)
    if chunk ~= nil then
      setfenv(chunk, env)
    end
    return chunk, err
  end
  return load(source, name, "t", env)
end

local function readAll(file)
  local text = file:read("*a")
  file:close()
  return text
end

local scriptFile, openErr = io.open(scriptPath, "r")
if scriptFile == nil then
  io.stderr:write("cannot open " .. scriptPath .. ": " .. tostring(openErr) .. "\n")
  os.exit(2)
end
local script = readAll(scriptFile)

local objectChunk, objectErr = compile(readAll(io.stdin), "=object", {})
if objectChunk == nil then
  io.stderr:write("object is not a Lua chunk: " .. tostring(objectErr) .. "\n")
  os.exit(2)
end

local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall, select = select,
  tonumber = tonumber, tostring = tostring, type = type, unpack = unpack or table.unpack, xpcall = xpcall,
  rawequal = rawequal, rawget = rawget, rawset = rawset, getmetatable = getmetatable, setmetatable = setmetatable,
  table = table,
  os = { time = os.time, clock = os.clock, date = os.date },
  obj = objectChunk(),
}
env._G = env

local chunk, compileErr = compile(script, "@" .. scriptPath, env)
if chunk == nil then
  io.stderr:write(tostring(compileErr) .. "\n")
  os.exit(1)
end

local stringMeta = getmetatable("")
debug.setmetatable("", nil)
local ok, result = pcall(chunk)
debug.setmetatable("", stringMeta)
if not ok then
  io.stderr:write(tostring(result) .. "\n")
  os.exit(1)
end
if type(result) ~= "table" then
  io.stderr:write("expect table output from Lua script, not " .. type(result) .. "\n")
  os.exit(1)
end

local valid = { Unknown = true, Progressing = true, Suspended = true, Healthy = true, Degraded = true, Missing = true }
local status, message = result.status, result.message
if not valid[status] then
  status, message = "Unknown", "Lua returned an invalid health status"
end
io.write(tostring(status), "\n", message == nil and "" or tostring(message))
