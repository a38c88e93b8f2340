package mqttlink

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

// KeyMemory is implemented by a store that remembers which signing key the
// cloud has accepted (edge/bolt does). With it, a restarted agent publishes
// its outbox at once even while the cloud's HTTP side is unreachable;
// without it, it waits for this run's registration.
type KeyMemory interface {
	// KeyRegistered reports whether key was registered before.
	KeyRegistered(key ed25519.PublicKey) bool
	// MarkKeyRegistered records that the cloud accepted key.
	MarkKeyRegistered(key ed25519.PublicKey) error
}

// registering reports whether the link registers a key at all: it needs the
// key and the cloud's address.
func (l *Link) registering() bool {
	return len(l.cfg.PublicKey) == ed25519.PublicKeySize && l.cfg.CloudURL != ""
}

// mayPublish reports whether gate events may leave the outbox. The cloud
// drops events signed by a key it does not know, and a dropped event is
// lost, so they wait in the outbox until the key is registered.
func (l *Link) mayPublish() bool {
	return !l.registering() || l.keyRegistered.Load()
}

// registerLoop registers the agent's public key with the cloud, retrying
// until it succeeds. It registers on every start, even when the store
// remembers an earlier registration: registering a known key is harmless,
// and it heals a cloud that lost its copy.
func (l *Link) registerLoop() {
	backoff := time.Second
	for {
		err := l.registerKey()
		if err == nil {
			// Remembered before publishing is allowed, so that whoever sees
			// an event published finds the registration in the store.
			if km, ok := l.store.(KeyMemory); ok {
				if err := km.MarkKeyRegistered(l.cfg.PublicKey); err != nil {
					l.log.Warn("could not remember the key's registration", "err", err)
				}
			}
			l.keyRegistered.Store(true)
			l.log.Info("signing key registered", "public_key", protocol.EncodePublicKey(l.cfg.PublicKey))
			signal(l.wake)
			return
		}
		l.registerErrs.Add(1)
		l.log.Warn("registering the signing key failed", "err", err, "retry_in", backoff)
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// registerKey is one POST /v1/edge/lots/{lot_id}/keys.
func (l *Link) registerKey() error {
	body, _ := json.Marshal(map[string]string{"public_key": protocol.EncodePublicKey(l.cfg.PublicKey)})
	u := fmt.Sprintf("%s/v1/edge/lots/%s/keys", strings.TrimRight(l.cfg.CloudURL, "/"), url.PathEscape(l.cfg.LotID))
	ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("register key request: %w", err)
	}
	if l.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+l.cfg.Token)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := l.http.Do(req)
	if err != nil {
		return fmt.Errorf("register key: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("register key refused (%s): check PARKGATE_EDGE_TOKEN", resp.Status)
	default:
		return fmt.Errorf("register key: %s", resp.Status)
	}
}
