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
// burst, rate, period (s) and tokens wanted of the client's limit and of
// the lot's. Returns {stored or "", epoch, version, value, reached (1/0),
// client tokens (-1 not asked, 0 refused, else how many granted), client
// retry (s), lot tokens, lot retry}.
//
// The GCRA is redis_rate's, on redis_rate's keys, so AllowLot and
// AllowClient share its buckets; where redis_rate's allowN takes a cost
// or refuses, this takes the first token or refuses exactly as allowN
// with a cost of 1 would, and then as many more of the tokens wanted as
// are free: a lease (see leases).
var admitScript = redis.NewScript(currentLua + `
local function gcra(key, burst, rate, period, want)
  local emission = tonumber(period) / tonumber(rate)
  local burst_offset = emission * tonumber(burst)
  local now = redis.call('TIME')
  now = (now[1] - 1483228800) + (now[2] / 1000000)
  local tat = redis.call('GET', key)
  if not tat then tat = now else tat = tonumber(tat) end
  tat = math.max(tat, now)
  local diff = now - (tat + emission - burst_offset)
  if diff / emission < 0 then
    return 0, tostring(-diff)
  end
  -- The first token, and as many more as are free, up to want: each
  -- moves the TAT on by one emission interval.
  local n = math.min(tonumber(want), 1 + math.floor(diff / emission))
  local new_tat = tat + n * emission
  local reset_after = new_tat - now
  if reset_after > 0 then
    redis.call('SET', key, new_tat, 'EX', math.ceil(reset_after))
  end
  return n, '-1'
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
  ca, cr = gcra(KEYS[5], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
end
if ca ~= 0 and ARGV[3] == '1' then
  la, lr = gcra(KEYS[6], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
end
return {'', e, v, value, 1, ca, cr, la, lr}
`)

// Admit is cloud.Admitter's: Peek and the rate limits (AllowClient, then
// AllowLot) in one round trip, the limits asked only when neither a stored
// response nor a full window answers first. A limit this replica holds a
// leased token of is not asked: the token is spent (and given back if the
// request turns out to need none); one it already knows refuses (its memo)
// is not asked either, as in allow. A limit that is asked is asked for a
// lease: its request's token and, as the burst allows, some for the
// requests that follow here (see leases). If Redis cannot answer, nothing
// is found and the limits are not asked: the caller asks them, and their
// fallback takes over.
func (g *Guard) Admit(ctx context.Context, key, lotID string, start, end time.Time, availability bool, clientID string) cloud.Admission {
	cache := availability && g.recoverCache(ctx)
	if availability && !cache {
		fallbacks.WithLabelValues(featureAvailability).Inc()
	}
	cl, cKey := g.opts.ClientRate, scopeClient+":"+clientID
	ll, lKey := g.lotLimit(lotID), scopeLot+":"+lotID
	askClient := clientID != "" && !cl.unlimited()
	askLot := lotID != "" && !ll.unlimited()
	now := g.now()

	// Tokens held here first, then the memo of refusals, then Redis: for
	// a lease, unless another request is asking for one already.
	var cLeased, lLeased bool
	var cUntil, lUntil time.Time
	cWant, lWant := 1, 1
	cWait, lWait := time.Duration(0), time.Duration(0)
	if askClient {
		if cLeased, cUntil, cWant = g.leases.takeOrAsk(cKey, cl.leaseSize(), now); cLeased {
			askClient = false
		} else if cWait = g.denied.until(cKey, now); cWait > 0 {
			askClient, askLot = false, false // the lot's is not asked after a refusal
		}
		if cWant > 1 {
			defer g.leases.asked(cKey)
		}
	}
	if askLot {
		if lLeased, lUntil, lWant = g.leases.takeOrAsk(lKey, ll.leaseSize(), now); lLeased {
			askLot = false
		} else if lWait = g.denied.until(lKey, now); lWait > 0 {
			askLot = false
		}
		if lWant > 1 {
			defer g.leases.asked(lKey)
		}
	}
	// giveBack returns the leased tokens of a request that spent none.
	giveBack := func(client, lot bool) {
		if client && cLeased {
			g.leases.giveBack(cKey, now, cUntil)
		}
		if lot && lLeased {
			g.leases.giveBack(lKey, now, lUntil)
		}
	}

	keys := append(g.lookupKeys(lotID, start, end), "rate:"+g.key(scopeClient, clientID), "rate:"+g.key(scopeLot, lotID))
	keys = append([]string{g.idemKey(key)}, keys...)
	args := []any{flag(cache), flag(askClient), flag(askLot)}
	wants := [2]int{cWant, lWant}
	for i, l := range [2]Limit{cl, ll} {
		if l.unlimited() {
			args = append(args, 1, 1, 1, 1)
			continue
		}
		r := l.gcra()
		args = append(args, r.Burst, r.Rate, r.Period.Seconds(), wants[i])
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
		giveBack(true, true)
		return a
	}
	if raw, _ := res[0].(string); raw != "" {
		a.Stored, a.Replay = storedResponse([]byte(raw), nil)
		if a.Replay {
			giveBack(true, true)
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
		giveBack(true, true)
		return a // limits not asked (or asked of a window Go takes for full: not the case)
	}
	g.keepLease(cKey, cl, res[5], now)
	g.keepLease(lKey, ll, res[7], now)
	a.Asked, a.Allowed = true, true
	switch {
	case cWait > 0:
		rateLimited.WithLabelValues(scopeClient).Inc()
		a.Allowed, a.RetryAfter = false, cWait
	case refused(res[5], res[6], cKey, now, &g.denied, &a):
		rateLimited.WithLabelValues(scopeClient).Inc()
		giveBack(false, true)
	case lWait > 0:
		rateLimited.WithLabelValues(scopeLot).Inc()
		a.Allowed, a.RetryAfter = false, lWait
	case refused(res[7], res[8], lKey, now, &g.denied, &a):
		rateLimited.WithLabelValues(scopeLot).Inc()
	}
	return a
}

// keepLease keeps, of the tokens a limit granted (the script's count),
// those beyond the request's own.
func (g *Guard) keepLease(key string, l Limit, granted any, now time.Time) {
	if n, _ := granted.(int64); n > 1 {
		g.leases.add(key, int(n-1), now.Add(l.leaseLife(int(n))), now)
	}
}

// Leased is cloud.Admitter's: it spends a leased token of each limit the
// request is under (the client's, the lot's), or of neither and reports
// false; with no limit to ask it reports true.
func (g *Guard) Leased(lotID, clientID string) bool {
	var cKey, lKey string
	if clientID != "" && !g.opts.ClientRate.unlimited() {
		cKey = scopeClient + ":" + clientID
	}
	if lotID != "" && !g.lotLimit(lotID).unlimited() {
		lKey = scopeLot + ":" + lotID
	}
	if g.leases.takeBoth(cKey, lKey, g.now()) {
		leasedAdmissions.Inc()
		return true
	}
	return false
}

// lotLimit is lotID's limit: its LotRates entry, or LotRate.
func (g *Guard) lotLimit(lotID string) Limit {
	if l, found := g.opts.LotRates[lotID]; found {
		return l
	}
	return g.opts.LotRate
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
