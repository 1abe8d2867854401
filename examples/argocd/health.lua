-- Argo CD health of a keelson.dev MicroservicePlatform, from the conditions the operator writes
-- (docs: README, "Through Argo CD"). Install it as
-- resource.customizations.health.keelson.dev_MicroservicePlatform in argocd-cm (argocd-cm.yaml).
--
--   Healthy      Ready=True for the current generation
--   Suspended    Paused=True (keelson.dev/reconcile=paused): the operator writes nothing
--   Progressing  no status yet, a generation not observed yet, Ready=Unknown, or Ready=False for a
--                reason that passes by itself (objects applied, pods starting, topics and
--                databases being made)
--   Degraded     Ready=False for any other reason (an invalid spec, an apply refused, a broker or
--                database server unreachable, ...): something needs a person; the message says what
hs = {}

local passing = {
  Reconciling = true,
  Progressing = true,
  RoutePending = true,
  KafkaTopicsPending = true,
  DatabasesPending = true,
}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report"
  return hs
end

-- Before the generation: a paused platform's status is not written again (not even to observe a
-- new generation) until the pause is lifted.
local paused = condition(status.conditions, "Paused")
if paused ~= nil and paused.status == "True" then
  hs.status = "Suspended"
  hs.message = paused.message or "Reconciliation is paused"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = (ready and ready.message) or "Waiting for the Ready condition"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
elseif passing[ready.reason] then
  hs.status = "Progressing"
  hs.message = ready.message or ready.reason
else
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
end
return hs
