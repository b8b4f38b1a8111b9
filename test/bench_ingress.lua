-- wrk script for the ingress benchmark: every request is a distinct Evolution
-- messages.upsert (unique key.id), spread over the five domain instances of
-- deploy/bench.conf and 5,000 customers. Prints one JSON line at the end.
local instances = {"financeiro", "comercial", "suporte", "ouvidoria", "cancelamento"}
local texts = {"minha internet caiu desde ontem", "quero parcelar a fatura atrasada",
               "tem desconto para contratar fibra?", "quero cancelar meu contrato",
               "já liguei 3 vezes e ninguém resolve"}
local threads = {}
local next_id = 0
-- WRK_DELAY_MS: each connection waits that long after each answer (test/bench_floor.py paces
-- 64 connections to ~2,000 requests/s with 32); unset: flat out
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
if delay_ms then
  function delay() return delay_ms end
end

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = string.format("WRK%d-%d-", os.time(), tid)
  counter = 0
  non200 = 0
end

function request()
  counter = counter + 1
  local i = counter % 5 + 1
  local body = string.format(
    '{"event":"messages.upsert","instance":"%s","apikey":"bench-key","data":{"key":{"remoteJid":"55119%08d@s.whatsapp.net","fromMe":false,"id":"%s%d"},"pushName":"Bench","message":{"conversation":"%s"},"messageType":"conversation","messageTimestamp":1763800000}}',
    instances[i], (counter * 7 + tid) % 5000, prefix, counter, texts[i])
  return wrk.format("POST", "/webhooks/evolution", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local refused = 0
  for _, t in ipairs(threads) do refused = refused + t:get("non200") end
  local secs = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"acked":%d,"refused":%d,"acked_per_s":%.0f,"latency_ms":{"mean":%.3f,"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f},"socket_errors":%d}\n',
    summary.requests, secs, summary.requests - refused, refused, (summary.requests - refused) / secs,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
