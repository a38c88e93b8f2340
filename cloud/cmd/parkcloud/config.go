package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parkgate/parkgate/cloud/postgres"
)

// Config is parkcloud's configuration: every field a flag whose default
// comes from the environment variable named in its help.
type Config struct {
	DatabaseURL         string
	DatabaseReadURL     string
	RedisURL            string
	MQTTURLs            string
	StripeSecretKey     string
	StripeWebhookSecret string
	StripeAPIBase       string
	CheckoutSuccessURL  string
	CheckoutCancelURL   string
	HTTPAddr            string
	AdminToken          string
	HoldTTL             time.Duration
	SigningKey          string
	Bus                 string
	KafkaBrokers        string
	KafkaTopic          string
	LotRate             string
	LotRates            string
	ClientRate          string
	ReplicaID           string
	DBMaxConns          int
	SearchConcurrency   int
	LotInFlight         int
	WorkerEvery         time.Duration
	BusWorkers          int
	AlertWorkers        int
	AlertPoll           time.Duration
	SharedIngest        bool
	RedisNamespace      string
	PprofAddr           string
}

type envFlags struct {
	fs *flag.FlagSet
}

func (e envFlags) str(p *string, name, env, def, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, fmt.Sprintf("%s (env %s)", usage, env))
	// --help prints the default, which may have come from the environment:
	// a URL there shows without its password.
	e.fs.Lookup(name).DefValue = maskURLs(def)
}

// secret is str for a credential: --help says whether the environment sets
// it, never what it is.
func (e envFlags) secret(p *string, name, env, usage string) {
	e.str(p, name, env, "", usage)
	if *p != "" {
		e.fs.Lookup(name).DefValue = "set in " + env
	}
}

func (e envFlags) dur(p *time.Duration, name, env string, def time.Duration, usage string) {
	e.fs.Func(name, fmt.Sprintf("%s (env %s, default %s)", usage, env, def), func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("%s must be positive", name)
		}
		*p = d
		return nil
	})
	*p = def
	if v, ok := os.LookupEnv(env); ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			*p = d
		} else {
			fmt.Fprintf(os.Stderr, "parkcloud: %s=%q is not a positive Go duration; using %s\n", env, v, def)
		}
	}
}

func (e envFlags) num(p *int, name, env string, def int, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if _, err := fmt.Sscan(v, &def); err != nil {
			fmt.Fprintf(os.Stderr, "parkcloud: %s=%q is not a number\n", env, v)
		}
	}
	e.fs.IntVar(p, name, def, fmt.Sprintf("%s (env %s)", usage, env))
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return fmt.Sprint("parkcloud-", os.Getpid())
	}
	return h
}

// ParseFlags reads the configuration from args and the environment.
func (c *Config) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("parkcloud", flag.ContinueOnError)
	// -help prints the page on stdout (main exits 0); a mistake is one line
	// from main, not the whole list on stderr.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	e := envFlags{fs}
	e.str(&c.DatabaseURL, "database-url", "DATABASE_URL", "postgres://parkgate:parkgate@127.0.0.1:5432/parkgate?sslmode=disable", "Postgres URL")
	e.str(&c.DatabaseReadURL, "database-read-url", "DATABASE_READ_URL", "", "Postgres URL of a read replica for lot searches (their spot counts may lag the primary; availability and holds stay on DATABASE_URL); empty searches the primary")
	e.str(&c.RedisURL, "redis-url", "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL for the hot-lot guard; empty disables it. Behind Redis Sentinel: redis://SENTINEL:26379/0?master_name=NAME&addr=SENTINEL2:26379&addr=SENTINEL3:26379 (the guard follows the promoted master)")
	e.str(&c.RedisNamespace, "redis-namespace", "PARKGATE_REDIS_NAMESPACE", "parkgate", "prefix of every Redis key, so deployments (or simulator runs) can share one Redis")
	e.str(&c.MQTTURLs, "mqtt-url", "MQTT_URL", "tcp://127.0.0.1:1883", "MQTT broker URLs, comma-separated for failover; empty disables relay and ingest")
	e.secret(&c.StripeSecretKey, "stripe-secret-key", "STRIPE_SECRET_KEY", "Stripe secret key; empty disables payments (holds then carry no Checkout Session)")
	e.secret(&c.StripeWebhookSecret, "stripe-webhook-secret", "STRIPE_WEBHOOK_SECRET", "Stripe webhook signing secret(s), comma-separated during rotation")
	e.str(&c.StripeAPIBase, "stripe-api-base", "STRIPE_API_BASE", "https://api.stripe.com", "Stripe API base URL (a local stand-in in tests)")
	e.str(&c.CheckoutSuccessURL, "checkout-success-url", "PARKGATE_CHECKOUT_SUCCESS_URL", "http://127.0.0.1:8080/reservations/{RESERVATION_ID}?session_id={CHECKOUT_SESSION_ID}", "where Checkout sends the driver after paying ({RESERVATION_ID} becomes the reservation's id)")
	e.str(&c.CheckoutCancelURL, "checkout-cancel-url", "PARKGATE_CHECKOUT_CANCEL_URL", "http://127.0.0.1:8080/reservations/{RESERVATION_ID}", "where Checkout sends a driver who gives up")
	e.str(&c.HTTPAddr, "http-addr", "PARKGATE_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address")
	e.str(&c.PprofAddr, "pprof-addr", "PARKGATE_PPROF_ADDR", "", "listen address of net/http/pprof, for profiling under load; empty (the default) serves none. Bind it to loopback: profiles show the process' memory")
	e.secret(&c.AdminToken, "admin-token", "PARKGATE_ADMIN_TOKEN", "operator bearer token; empty refuses every operator call")
	e.dur(&c.HoldTTL, "hold-ttl", "PARKGATE_HOLD_TTL", 10*time.Minute, "how long a PENDING hold lasts")
	e.secret(&c.SigningKey, "signing-key", "PARKGATE_SIGNING_KEY", "standard base64 of the 32-byte ed25519 seed that signs cloud→edge messages; empty makes a throwaway key (development only)")
	e.str(&c.Bus, "bus", "PARKGATE_BUS", "postgres", "payment-event bus backend: postgres or kafka")
	e.str(&c.KafkaBrokers, "kafka-brokers", "KAFKA_BROKERS", "", "Kafka seed brokers, comma-separated (bus=kafka)")
	e.str(&c.KafkaTopic, "kafka-topic", "KAFKA_TOPIC", "parkgate.payment-events", "Kafka topic of payment events (bus=kafka)")
	e.str(&c.LotRate, "lot-rate", "PARKGATE_LOT_RATE", "50/100", "default per-lot request limit, rate per second/burst")
	e.str(&c.LotRates, "lot-rates", "PARKGATE_LOT_RATES", "", "per-lot limits, lotid=rate/burst,…")
	e.str(&c.ClientRate, "client-rate", "PARKGATE_CLIENT_RATE", "100/200", "per-client request limit, rate per second/burst")
	e.str(&c.ReplicaID, "replica-id", "PARKGATE_REPLICA_ID", hostname(), "this replica's name: its MQTT client ids derive from it")
	e.num(&c.DBMaxConns, "db-max-conns", "PARKGATE_DB_MAX_CONNS", 20, "Postgres pool size")
	e.num(&c.SearchConcurrency, "search-concurrency", "PARKGATE_SEARCH_CONCURRENCY", postgres.DefaultSearchConcurrency, "lot searches run in Postgres at once; more wait their turn in order (about the database's cores)")
	e.num(&c.LotInFlight, "lot-inflight", "PARKGATE_LOT_INFLIGHT", 8, "hold requests of one lot in this replica at once; more wait up to 250ms, holding nothing, then get 429 (keep well under db-max-conns)")
	e.dur(&c.WorkerEvery, "worker-interval", "PARKGATE_WORKER_INTERVAL", time.Second, "how often the hold-expiry worker runs")
	e.num(&c.BusWorkers, "bus-workers", "PARKGATE_BUS_WORKERS", 32, "payment-event handlers per replica; they mostly wait on shared commits, so more than the pool is fine")
	e.num(&c.AlertWorkers, "alert-workers", "PARKGATE_ALERT_WORKERS", 8, "alert webhook posts in flight at once per replica (each waits up to 10s on a slow receiver)")
	e.dur(&c.AlertPoll, "alert-poll", "PARKGATE_ALERT_POLL", time.Second, "how often each replica looks for alert webhooks due: the most an alert waits for its first attempt")
	shared := os.Getenv("PARKGATE_SHARED_INGEST") == "true"
	fs.BoolVar(&c.SharedIngest, "shared-ingest", shared, "split gate events between replicas with an MQTT shared subscription (env PARKGATE_SHARED_INGEST); off by default because Mosquitto 2.0 keeps sending shares to departed members and drops $share subscriptions on restart: every replica then reads every event and Postgres keeps each once")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(os.Stdout, usage+"\nFlags of serve and migrate; each falls back to the environment variable in its help:\n\n")
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return err
		}
		return usageError{fmt.Errorf("%w (parkcloud help lists every flag)", err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if c.Bus != "postgres" && c.Bus != "kafka" {
		return fmt.Errorf("PARKGATE_BUS must be postgres or kafka, not %q", c.Bus)
	}
	if c.Bus == "kafka" && c.KafkaBrokers == "" {
		return fmt.Errorf("PARKGATE_BUS=kafka needs KAFKA_BROKERS")
	}
	if c.StripeSecretKey != "" && c.StripeWebhookSecret == "" {
		return fmt.Errorf("STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: payments could never be confirmed")
	}
	return nil
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// mask says whether a secret is set, and nothing more: any part of it, or
// its length, in a log is a head start for whoever reads the log.
func mask(s string) string {
	if s == "" {
		return "unset"
	}
	return "set"
}

// maskURLs is maskURL of each of a comma-separated list.
func maskURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = maskURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// maskURL hides the password of a URL.
func maskURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	userinfo := u[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return u[:scheme+3] + userinfo[:i] + ":****" + u[at:]
	}
	return u
}
