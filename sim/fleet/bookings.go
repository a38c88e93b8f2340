package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkgate/parkgate/internal/testkit/stripefake"
)

// booking is one driver's paid reservation.
type booking struct {
	lot       int // index into the run's agents
	id        string
	plate     string
	session   string
	phase     string    // "steady" or "restart"
	paid      time.Time // the stand-in completed the session
	confirmed time.Time // the cloud answered the payment webhook 2xx
	committed time.Time // the CONFIRMED change's row in the lot's change log
	applied   time.Time // the lot's edge applied that change
}

// booker holds a spot through the cloud's API and pays for it at the
// Stripe stand-in, whose signed webhook confirms it, at a steady rate.
type booker struct {
	cloudURL string
	http     *http.Client
	stripe   *stripefake.Fake
	lots     []string // lot ids, by agent index
	run      string   // makes plates unique to the run

	next    atomic.Int64 // bookings started, across phases
	mu      sync.Mutex
	done    []*booking
	failed  int
	lastErr error
}

// book makes bookings at rate per second until d has passed or ctx ends,
// spread round-robin across the lots, and returns once every started
// booking has its answer.
func (b *booker) book(ctx context.Context, phase string, rate float64, d time.Duration) {
	if rate <= 0 || d <= 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.Now().Add(d)
	sem := make(chan struct{}, 128) // bounds a backlog if the cloud slows down
	var wg sync.WaitGroup
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		n := b.next.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			bk, err := b.one(ctx, int(n-1)%len(b.lots), n, phase)
			b.mu.Lock()
			defer b.mu.Unlock()
			if err != nil {
				b.failed++
				b.lastErr = err
				return
			}
			b.done = append(b.done, bk)
		}()
	}
	wg.Wait()
}

// one holds a spot for the next hour at lot i and pays for it.
func (b *booker) one(ctx context.Context, i int, n int64, phase string) (*booking, error) {
	plate := fmt.Sprintf("F%s%06d", b.run, n)
	start := time.Now().Add(2 * time.Minute).UTC().Truncate(time.Second)
	body, _ := json.Marshal(map[string]string{
		"lot_id": b.lots[i], "plate": plate,
		"starts_at": start.Format(time.RFC3339), "ends_at": start.Add(time.Hour).Format(time.RFC3339),
	})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cloudURL+"/v1/reservations", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "fleet-"+b.run+"-"+strconv.FormatInt(n, 10))
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("hold: %w", err)
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("hold: %d %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	var ans struct {
		ID      string `json:"id"`
		Payment struct {
			SessionID string `json:"session_id"`
		} `json:"payment"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || ans.ID == "" || ans.Payment.SessionID == "" {
		return nil, fmt.Errorf("hold: unexpected answer %s", raw)
	}
	if _, err := b.stripe.Pay(ans.Payment.SessionID); err != nil {
		return nil, fmt.Errorf("pay: %w", err)
	}
	return &booking{lot: i, id: ans.ID, plate: plate, session: ans.Payment.SessionID, phase: phase, paid: time.Now()}, nil
}

func (b *booker) bookings() []*booking {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*booking(nil), b.done...)
}
