-- Argo CD health check of mlops.gitops.dev/MLPipeline (the mlpipeline-operator).
--
--   Progressing  the operator has not written the status of this generation yet, or its run is
--                Pending or Running
--   Degraded     the spec is invalid (condition Valid=False, phase Invalid), the run failed, or
--                the run succeeded but promoting its model failed
--   Suspended    the schedule is suspended (spec.schedule.suspend: true), or the pipeline is
--                (spec.suspend: true: no run is submitted)
--   Healthy      the run of this generation succeeded (the model may have been promoted or
--                rejected by its gates), or the schedule is in place and its newest run did
--                not fail
local hs = {}

local function condition(status, kind)
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end

local function with_detail(message, detail)
  if detail == nil or detail == "" then
    return message
  end
  return message .. ": " .. detail
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to handle the pipeline"
  return hs
end

local generation = 1
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
if status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to handle generation " .. tostring(generation)
    .. " (the status is of generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local valid = condition(status, "Valid")
if status.phase == "Invalid" or (valid ~= nil and valid.status == "False") then
  local detail = status.message
  if valid ~= nil and valid.message ~= nil and valid.message ~= "" then
    detail = valid.message
  end
  hs.status = "Degraded"
  hs.message = with_detail("Invalid spec", detail)
  return hs
end

local schedule = nil
if obj.spec ~= nil then
  schedule = obj.spec.schedule
end
if schedule ~= nil and schedule.suspend == true then
  hs.status = "Suspended"
  hs.message = "Schedule suspended"
  return hs
end
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended (spec.suspend): no run is submitted"
  return hs
end

local ready = condition(status, "Ready")
local message = status.message
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  message = ready.message
end

if status.phase == "Failed" or (ready ~= nil and ready.reason == "RunFailed") then
  hs.status = "Degraded"
  hs.message = with_detail("Run failed", message)
  return hs
end

if status.phase == "Succeeded" or (ready ~= nil and ready.status == "True") then
  local promotion = status.promotion
  local last = status.lastRun
  if promotion ~= nil and promotion.decision == "Failed" and last ~= nil
      and promotion.run == last.name then
    hs.status = "Degraded"
    hs.message = with_detail("Promotion failed", promotion.reason)
    return hs
  end
  hs.status = "Healthy"
  hs.message = message or ""
  if promotion ~= nil and last ~= nil and promotion.run == last.name then
    if promotion.decision == "Promoted" then
      hs.message = hs.message .. "; " .. tostring(promotion.model) .. " version "
        .. tostring(promotion.version) .. " holds alias " .. tostring(promotion.alias)
    elseif promotion.decision == "Rejected" then
      hs.message = with_detail(hs.message .. "; model not promoted", promotion.reason)
    end
  end
  return hs
end

if status.phase == "Pending" or status.phase == "Running" then
  hs.status = "Progressing"
  hs.message = message or ("Run " .. string.lower(status.phase))
  return hs
end

hs.status = "Unknown"
hs.message = "Unexpected phase " .. tostring(status.phase)
return hs
