package bolt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var keySigningSeed = []byte("signing_seed") // in bucketMeta: the agent's ed25519 seed

// loadKey returns the agent's signing key, making it on the store's first
// open. It lives in the store, not in configuration, so an agent's identity
// is its file: a restart keeps the key the cloud has registered, and a copy
// of the configuration on another machine does not carry it.
func loadKey(tx *bolt.Tx) (ed25519.PrivateKey, error) {
	meta := tx.Bucket(bucketMeta)
	if seed := meta.Get(keySigningSeed); seed != nil {
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("signing key: stored seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err := meta.Put(keySigningSeed, seed); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// PublicKey returns the public half of the key that signs every gate event
// the store puts in its outbox; the agent registers it with the cloud.
func (s *Store) PublicKey() ed25519.PublicKey {
	return s.key.Public().(ed25519.PublicKey)
}

var keyRegistered = []byte("registered_key") // in bucketMeta: the public key the cloud accepted

// KeyRegistered implements mqttlink.KeyMemory.
func (s *Store) KeyRegistered(key ed25519.PublicKey) bool {
	var ok bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		ok = bytes.Equal(tx.Bucket(bucketMeta).Get(keyRegistered), key)
		return nil
	})
	return ok && len(key) == ed25519.PublicKeySize
}

// MarkKeyRegistered implements mqttlink.KeyMemory.
func (s *Store) MarkKeyRegistered(key ed25519.PublicKey) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyRegistered, key)
	})
	if err != nil {
		return fmt.Errorf("mark key registered: %w", err)
	}
	return nil
}
