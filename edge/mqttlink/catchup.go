package mqttlink

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

func (l *Link) requestCatchUp() {
	if l.cfg.CloudURL != "" {
		signal(l.catchReq)
	}
}

// outagePoller asks for a catch-up every CatchUpInterval while the broker
// connection is down. Live changes come only through the broker, so without
// it a booking confirmed during a broker-only outage would be refused at the
// gate until the broker came back, though the cloud could be asked.
func (l *Link) outagePoller() {
	t := time.NewTicker(l.cfg.CatchUpInterval)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		if !l.client.IsConnectionOpen() {
			l.requestCatchUp()
		}
	}
}

func (l *Link) catchUpLoop() {
	backoff := time.Second
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.catchReq:
		}
		for {
			err := l.catchUp()
			if err == nil {
				l.catchUps.Add(1)
				l.startup.Store(true)
				backoff = time.Second
				break
			}
			l.catchUpErrs.Add(1)
			l.log.Warn("catch-up failed", "err", err, "retry_in", backoff)
			if l.startup.Load() && !l.gapOpen.Load() {
				break // live messages closed the gap meanwhile
			}
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// catchUp reads the change log from the applied seq to its end and hands
// each verified page to the applier.
func (l *Link) catchUp() error {
	after := l.applied.Load()
	for {
		page, err := l.fetch(after)
		if err != nil {
			return err
		}
		if page.LotID != "" && page.LotID != l.cfg.LotID {
			return fmt.Errorf("catch-up: page for lot %q", page.LotID)
		}
		for i := range page.Changes {
			if err := l.check(&page.Changes[i]); err != nil {
				// Nothing after a refused change can be applied in order.
				seq := page.Changes[i].Seq
				if i > 0 {
					l.sendPage(page.Changes[:i])
				}
				return fmt.Errorf("catch-up: change %d: %w", seq, err)
			}
		}
		if len(page.Changes) == 0 {
			return nil
		}
		if !l.sendPage(page.Changes) {
			return l.ctx.Err()
		}
		after = page.Changes[len(page.Changes)-1].Seq
		if !page.More {
			return nil
		}
	}
}

func (l *Link) sendPage(changes []protocol.ReservationChange) bool {
	select {
	case l.caught <- changes:
		return true
	case <-l.ctx.Done():
		return false
	}
}

func (l *Link) fetch(after int64) (*protocol.ChangesPage, error) {
	u := fmt.Sprintf("%s/v1/edge/lots/%s/changes?after=%d", strings.TrimRight(l.cfg.CloudURL, "/"), url.PathEscape(l.cfg.LotID), after)
	req, err := http.NewRequestWithContext(l.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("catch-up request: %w", err)
	}
	if l.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+l.cfg.Token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := l.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("catch-up after %d: %w", after, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("catch-up refused (%s): check PARKGATE_EDGE_TOKEN", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("catch-up after %d: %s", after, resp.Status)
	}
	var page protocol.ChangesPage
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page); err != nil {
		return nil, fmt.Errorf("catch-up page: %w", err)
	}
	return &page, nil
}
