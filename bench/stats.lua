-- Summaries of a benchmark's rounds, shared by the scripts in bench/.
local M = {}

---The median of a list of numbers (the mean of the middle two for an even count).
---@param list number[]
---@return number
function M.median(list)
    local s = {}
    for i, x in ipairs(list) do s[i] = x end
    table.sort(s)
    local m = #s
    return m % 2 == 1 and s[(m + 1) / 2] or (s[m / 2] + s[m / 2 + 1]) / 2
end

---The smallest and largest of a list of numbers.
---@param list number[]
---@return number lo, number hi
function M.range(list)
    local lo, hi = math.huge, -math.huge
    for _, x in ipairs(list) do
        if x < lo then lo = x end
        if x > hi then hi = x end
    end
    return lo, hi
end

return M
