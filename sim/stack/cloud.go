package stack

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/protocol"
)

func (s *Stack) cloud(ctx context.Context) error {
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	key := ed25519.NewKeyFromSeed(seed)
	s.PublicKey = protocol.EncodePublicKey(key.Public().(ed25519.PublicKey))
	s.AdminToken = "parksim-admin-" + randHex(8)
	env := []string{
		"DATABASE_URL=" + s.DatabaseURL,
		"REDIS_URL=" + s.opts.RedisURL,
		"MQTT_URL=" + s.cloudMQTTURL(),
		"STRIPE_SECRET_KEY=sk_test_parksim",
		"STRIPE_WEBHOOK_SECRET=" + webhookSecret,
		"STRIPE_API_BASE=" + s.StripeURL,
		"PARKGATE_ADMIN_TOKEN=" + s.AdminToken,
		"PARKGATE_HOLD_TTL=" + s.opts.HoldTTL.String(),
		"PARKGATE_SIGNING_KEY=" + base64.StdEncoding.EncodeToString(seed),
		"PARKGATE_WORKER_INTERVAL=" + s.opts.WorkerInterval.String(),
		"PARKGATE_CLIENT_RATE=" + s.opts.ClientRate,
		"PARKGATE_REPLICA_ID=parksim-" + s.Schema,
		"PARKGATE_REDIS_NAMESPACE=parksim-" + s.Schema,
	}
	if s.prod != nil {
		env = append(env, "PARKGATE_REPLICA_ID="+cloudReplica, "SSL_CERT_FILE="+s.prod.caFile)
	}
	if s.opts.LotRate != "" {
		env = append(env, "PARKGATE_LOT_RATE="+s.opts.LotRate)
	}
	if s.opts.DBMaxConns > 0 {
		env = append(env, "PARKGATE_DB_MAX_CONNS="+strconv.Itoa(s.opts.DBMaxConns))
	}
	p, addr, err := s.startServing(ctx, "parkcloud", s.opts.CloudBin, []string{"serve"},
		func(addr string) []string {
			s.cloudEnv = append(env, "PARKGATE_HTTP_ADDR="+addr)
			return s.cloudEnv
		}, "/readyz", 60*time.Second)
	if err != nil {
		return err
	}
	s.Cloud, s.CloudURL = p, "http://"+addr
	s.Webhooks.SetTarget(s.CloudURL + "/v1/payments/webhook")
	s.logf("parkcloud: %s%s", s.CloudURL, s.logNote(p))
	if s.LossyURL, err = s.serve(NewAnswerDropper(s.CloudURL)); err != nil {
		return fmt.Errorf("stack: lossy network: %w", err)
	}
	return nil
}

// do sends a JSON request and decodes a JSON answer into out.
func (s *Stack) do(ctx context.Context, method, url, token string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}
