package stack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/parkgate/parkgate/deploy/mosquitto"
	"github.com/parkgate/parkgate/internal/testkit/broker"
	"github.com/parkgate/parkgate/internal/testkit/proc"
)

// cloudReplica is the parkcloud replica id under a production broker: the
// shipped acl names the users parkcloud-relay-1 and parkcloud-ingest-1 (and
// -2), not a run's own.
const cloudReplica = "1"

// prodBroker is what a run under the production broker configuration keeps:
// the files parkgate.conf names, and every user with its password.
type prodBroker struct {
	dir, passwd, caFile string
	cloudPassword       string
	users               map[string]string
}

// productionBroker starts Mosquitto with deploy/mosquitto's parkgate.conf
// and acl — TLS on a loopback port with a throwaway ECDSA certificate for
// 127.0.0.1, no anonymous clients, client id bound to the username, the
// shipped persistence and queue limits — and a password file holding the
// cloud's two users. Lots' users are added once the lots exist (addLotUsers).
func (s *Stack) productionBroker() error {
	dir := filepath.Join(s.Dir, "broker")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("stack: broker dir: %w", err)
	}
	pb := &prodBroker{dir: dir, passwd: filepath.Join(dir, "parkgate.passwd"), cloudPassword: randHex(16)}
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := selfSigned(certFile, keyFile); err != nil {
		return fmt.Errorf("stack: broker certificate: %w", err)
	}
	pb.caFile = certFile
	aclFile := filepath.Join(dir, "parkgate.acl")
	if err := os.WriteFile(aclFile, []byte(mosquitto.ACLFile), 0o644); err != nil {
		return fmt.Errorf("stack: broker acl: %w", err)
	}
	pb.users = map[string]string{
		"parkcloud-relay-" + cloudReplica:  pb.cloudPassword,
		"parkcloud-ingest-" + cloudReplica: pb.cloudPassword,
	}
	if err := mosquitto.WritePasswords(pb.passwd, pb.users); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		port, err := proc.FreePort()
		if err != nil {
			return err
		}
		conf, err := mosquitto.Config(mosquitto.Paths{Port: port, DataDir: filepath.Join(dir, "data"),
			PasswordFile: pb.passwd, ACLFile: aclFile, CertFile: certFile, KeyFile: keyFile})
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		b, err := broker.NewConfig(dir, port, func(int, string) string { return conf })
		if err == nil {
			s.Broker, s.prod = b, pb
			s.logf("mosquitto: production config (deploy/mosquitto) on %s", s.BrokerURL())
			return nil
		}
		lastErr = err
	}
	return fmt.Errorf("stack: mosquitto: %w", lastErr)
}

// addLotUsers gives every lot's edge its broker user (the lot id, and
// {lot id}/gates/{gate} for each further gate's status connection) with its
// edge token as the password, and reloads the broker, as an operator adding
// lots would.
func (s *Stack) addLotUsers() error {
	for _, e := range s.Edges {
		s.prod.users[e.Lot.ID] = e.Token
		gates := append(append([]string(nil), e.Lot.Entry...), e.Lot.Exit...)
		for _, g := range gates[1:] {
			s.prod.users[e.Lot.ID+"/gates/"+g] = e.Token
		}
	}
	if err := mosquitto.WritePasswords(s.prod.passwd, s.prod.users); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	if err := s.Broker.Reload(); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	s.logf("mosquitto: %d users, reloaded", len(s.prod.users))
	return nil
}

// BrokerURL is the broker's address for an edge: ssl:// under the
// production configuration, tcp:// otherwise.
func (s *Stack) BrokerURL() string {
	if s.prod != nil {
		return "ssl://" + s.Broker.Addr()
	}
	return s.Broker.URL()
}

// CAFile is the certificate a client must trust to reach the production
// broker (SSL_CERT_FILE), "" without one.
func (s *Stack) CAFile() string {
	if s.prod == nil {
		return ""
	}
	return s.prod.caFile
}

// cloudMQTTURL is MQTT_URL for parkcloud: with the production broker it
// carries the password, which parkcloud uses as its relay and ingest users'.
func (s *Stack) cloudMQTTURL() string {
	if s.prod == nil {
		return s.Broker.URL()
	}
	u := url.URL{Scheme: "ssl", User: url.UserPassword("parkcloud", s.prod.cloudPassword), Host: s.Broker.Addr()}
	return u.String()
}

// selfSigned writes a one-day ECDSA P-256 certificate for 127.0.0.1 that is
// its own CA, so clients trust it through SSL_CERT_FILE as they would a
// public CA's.
func selfSigned(certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "parksim broker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	// Readable by Mosquitto whatever user it runs as: a throwaway key.
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o644)
}
