-- Argo CD health of a kvroute InferenceModel (inference.kvroute.io/v1alpha1), from what the operator writes
-- in status: observedGeneration and the Accepted condition (False with PoolNotFound or ModelNameInUse).
-- Uses only Lua 5.1 base functions: Argo CD runs health scripts from argocd-cm in gopher-lua without the
-- string library.
local hs = { status = "Progressing", message = "Waiting for the kvroute operator to accept the model" }

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

local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.message = "Waiting for the kvroute operator to observe generation " .. tostring(generation)
  return hs
end

local accepted = findCondition(status.conditions, "Accepted")
if accepted == nil or accepted.status == "Unknown" then
  return hs
end
if accepted.status == "True" then
  hs.status = "Healthy"
  hs.message = tostring(accepted.message)
  return hs
end
-- PoolNotFound (the poolRef names no pool in the namespace) or ModelNameInUse (an older model claims
-- the name): both wait for someone to change a manifest.
hs.status = "Degraded"
hs.message = tostring(accepted.reason) .. ": " .. tostring(accepted.message)
return hs
