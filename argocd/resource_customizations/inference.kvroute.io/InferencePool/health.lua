-- Argo CD health of a kvroute InferencePool (inference.kvroute.io/v1alpha1), from what the operator writes
-- in status: observedGeneration and the Ready, Progressing and Degraded conditions (an invalid spec gets
-- only Degraded=True/InvalidSpec). Uses only Lua 5.1 base functions: Argo CD runs health scripts from
-- argocd-cm in gopher-lua without the string library.
local hs = { status = "Progressing", message = "Waiting for the kvroute operator to report status" }

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

-- A condition describes the current spec when its own observedGeneration (or, lacking one, the status')
-- equals metadata.generation; a resource without a generation cannot be stale.
local function current(condition, status, generation)
  if generation == nil then
    return true
  end
  local observed = condition.observedGeneration
  if observed == nil then
    observed = status.observedGeneration
  end
  return observed == generation
end

local function describe(condition)
  return tostring(condition.reason) .. ": " .. tostring(condition.message)
end

local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation

local degraded = findCondition(status.conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" and current(degraded, status, generation) then
  hs.status = "Degraded"
  hs.message = describe(degraded)
  return hs
end

if generation ~= nil and status.observedGeneration ~= generation then
  hs.message = "Waiting for the kvroute operator to observe generation " .. tostring(generation)
  return hs
end

local progressing = findCondition(status.conditions, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.message = describe(progressing)
  return hs
end

local ready = findCondition(status.conditions, "Ready")
if ready == nil or ready.status == "Unknown" then
  hs.message = "Waiting for the Ready condition"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = tostring(ready.message)
  return hs
end
-- Ready=False although every Deployment has rolled out: no more pods are on their way.
hs.status = "Degraded"
hs.message = describe(ready)
return hs
