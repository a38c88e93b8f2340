package guard

import (
	"context"
	"strconv"
	"time"

	"github.com/parkgate/parkgate/cloud"
	"github.com/redis/go-redis/v9"
)

// admitScript is PeekState and, only when it finds neither a stored
// response nor the window known full, the client's GCRA limit and, when
// that allows, the lot's: the calm path of a hold in one round trip.
//
// KEYS: idempotency key, epoch, lot version, entry, client rate key, lot
// rate key. ARGV: availability (1/0), ask client (1/0), ask lot (1/0), then
// burst, rate, period (s) of the client's limit and of the lot's.
// Returns {stored or "", epoch, version, value, reached (1/0), client
// allowed (-1 not asked, 0, 1), client retry (s), lot allowed, lot retry}.
//
// The GCRA is redis_rate's (allowN with a cost of 1), on redis_rate's keys:
// AllowLot and AllowClient share its buckets.
var admitScript = redis.NewScript(currentLua + `
local function gcra(key, burst, rate, period)
  local emission = tonumber(period) / tonumber(rate)
  local burst_offset = emission * tonumber(burst)
  local now = redis.call('TIME')
  now = (now[1] - 1483228800) + (now[2] / 1000000)
  local tat = redis.call('GET', key)
  if not tat then tat = now else tat = tonumber(tat) end
  tat = math.max(tat, now)
  local new_tat = tat + emission
  local diff = now - (new_tat - burst_offset)
  if diff / emission < 0 then
    return 0, tostring(-diff)
  end
  local reset_after = new_tat - now
  if reset_after > 0 then
    redis.call('SET', key, new_tat, 'EX', math.ceil(reset_after))
  end
  return 1, '-1'
end
local stored = redis.call('GET', KEYS[1])
if stored then
  return {stored, '', '', '', 0, -1, '', -1, ''}
end
local e, v, value = '', '', ''
if ARGV[1] == '1' then
  e = current(KEYS[2])
  v = current(KEYS[3])
  local entry = redis.call('GET', KEYS[4])
  if entry then
    local tag = e .. ':' .. v .. ':'
    if string.sub(entry, 1, #tag) == tag then
      value = string.sub(entry, #tag + 1)
      local a = tonumber(string.match(value, '^(-?%d+),'))
      if a and a <= 0 then
        return {'', e, v, value, 0, -1, '', -1, ''}
      end
    end
  end
end
local ca, cr, la, lr = -1, '', -1, ''
if ARGV[2] == '1' then
  ca, cr = gcra(KEYS[5], ARGV[4], ARGV[5], ARGV[6])
end
if ca ~= 0 and ARGV[3] == '1' then
  la, lr = gcra(KEYS[6], ARGV[7], ARGV[8], ARGV[9])
end
return {'', e, v, value, 1, ca, cr, la, lr}
`)

// Admit is cloud.Admitter's: Peek and the rate limits (AllowClient, then
// AllowLot) in one round trip, the limits asked only when neither a stored
// response nor a full window answers first. A limit this replica already
// knows refuses (its memo) is not asked again, as in allow. If Redis
// cannot answer, nothing is found and the limits are not asked: the caller
// asks them, and their fallback takes over.
func (g *Guard) Admit(ctx context.Context, key, lotID string, start, end time.Time, availability bool, clientID string) cloud.Admission {
	cache := availability && g.recoverCache(ctx)
	if availability && !cache {
		fallbacks.WithLabelValues(featureAvailability).Inc()
	}
	cl, cKey := g.opts.ClientRate, scopeClient+":"+clientID
	ll, found := g.opts.LotRates[lotID]
	if !found {
		ll = g.opts.LotRate
	}
	lKey := scopeLot + ":" + lotID
	askClient := clientID != "" && !cl.unlimited()
	askLot := lotID != "" && !ll.unlimited()
	now := g.now()
	cWait, lWait := time.Duration(0), time.Duration(0)
	if askClient {
		if cWait = g.denied.until(cKey, now); cWait > 0 {
			askClient, askLot = false, false // the lot's is not asked after a refusal
		}
	}
	if askLot {
		if lWait = g.denied.until(lKey, now); lWait > 0 {
			askLot = false
		}
	}
	keys := append(g.lookupKeys(lotID, start, end), "rate:"+g.key(scopeClient, clientID), "rate:"+g.key(scopeLot, lotID))
	keys = append([]string{g.idemKey(key)}, keys...)
	args := []any{flag(cache), flag(askClient), flag(askLot)}
	for _, l := range []Limit{cl, ll} {
		if l.unlimited() {
			args = append(args, 1, 1, 1)
			continue
		}
		r := l.gcra()
		args = append(args, r.Burst, r.Rate, r.Period.Seconds())
	}
	var res []any
	err := g.call(ctx, func(ctx context.Context) error {
		var err error
		res, err = admitScript.Run(ctx, g.pipe, keys, args...).Slice()
		return err
	})
	var a cloud.Admission
	if err != nil || len(res) != 9 {
		fallbacks.WithLabelValues(featureIdempotency).Inc()
		if availability {
			fallbacks.WithLabelValues(featureAvailability).Inc()
		}
		return a
	}
	if raw, _ := res[0].(string); raw != "" {
		a.Stored, a.Replay = storedResponse([]byte(raw), nil)
		if a.Replay {
			return a
		}
	} else {
		cacheLookups.WithLabelValues("idempotency", "miss").Inc()
	}
	if cache {
		avail, _, ver, ok := g.availability(res[1:4], nil)
		a.Full = ok && avail <= 0
		a.MarkFull = func(total int) { g.StoreAvailability(ctx, lotID, start, end, ver, 0, total) }
	}
	if reached, _ := res[4].(int64); reached != 1 || a.Full {
		return a // limits not asked (or asked of a window Go takes for full: not the case)
	}
	a.Asked, a.Allowed = true, true
	switch {
	case cWait > 0:
		rateLimited.WithLabelValues(scopeClient).Inc()
		a.Allowed, a.RetryAfter = false, cWait
	case refused(res[5], res[6], cKey, now, &g.denied, &a):
		rateLimited.WithLabelValues(scopeClient).Inc()
	case lWait > 0:
		rateLimited.WithLabelValues(scopeLot).Inc()
		a.Allowed, a.RetryAfter = false, lWait
	case refused(res[7], res[8], lKey, now, &g.denied, &a):
		rateLimited.WithLabelValues(scopeLot).Inc()
	}
	return a
}

// refused reads one limit's answer; on a refusal it records it in a and
// the memo.
func refused(allowed, retry any, key string, asked time.Time, memo *denyMemo, a *cloud.Admission) bool {
	if n, _ := allowed.(int64); n != 0 {
		return false
	}
	s, _ := retry.(string)
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs < 0 {
		secs = 0
	}
	wait := time.Duration(secs * float64(time.Second))
	memo.remember(key, asked, wait)
	a.Allowed, a.RetryAfter = false, wait
	return true
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// InvalidateSaving is cloud.BatchFinisher's: InvalidateLot and
// SaveResponse of each of saves, sent together, in one round trip.
func (g *Guard) InvalidateSaving(ctx context.Context, lotID string, invalidate bool, saves []cloud.KeyedResponse) {
	ctx = context.WithoutCancel(ctx)
	err := g.call(ctx, func(ctx context.Context) error {
		b := g.pipe.build()
		var cmds []redis.Cmder
		var bump *redis.Cmd
		if invalidate {
			bump = b.EvalSha(ctx, bumpScript.Hash(), []string{g.versionKey(lotID)})
			cmds = append(cmds, bump)
		}
		sets := make([]*redis.StatusCmd, len(saves))
		for i, s := range saves {
			sets[i] = b.Set(ctx, g.idemKey(s.Key), encodeResponse(s.StoredResponse), g.opts.IdempotencyTTL)
			cmds = append(cmds, sets[i])
		}
		if err := g.pipe.sendAll(ctx, cmds...); err != nil {
			return err
		}
		if bump != nil && redis.HasErrorPrefix(bump.Err(), "NOSCRIPT") {
			// First use on this Redis: load the script the usual way.
			bump = bumpScript.Run(ctx, g.pipe, []string{g.versionKey(lotID)})
		}
		for _, c := range sets {
			if err := c.Err(); err != nil {
				fallbacks.WithLabelValues(featureIdempotency).Inc()
			}
		}
		if bump != nil {
			return bump.Err()
		}
		return nil
	})
	if err != nil && invalidate {
		fallbacks.WithLabelValues(featureAvailability).Inc()
		g.markDirty()
	}
}
