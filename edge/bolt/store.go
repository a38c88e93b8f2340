package bolt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/protocol"
)

var (
	_ edge.Store     = (*Store)(nil)
	_ edge.SyncStore = (*Store)(nil)
	_ edge.Outbox    = (*Store)(nil)
)

// MinTruncatedRead is the shortest read that is also looked up as a plate
// missing its last character. Shorter reads would match too many plates to
// be worth the risk.
const MinTruncatedRead = 4

// ErrClosed is returned by a Record on a closed store.
var ErrClosed = errors.New("bolt: store closed")

var (
	bucketReservations = []byte("reservations") // plate 0 id → reservation
	bucketFold         = []byte("fold")         // fold(plate) 0 plate → nothing
	bucketTrunc        = []byte("trunc")        // fold(plate minus last char) 0 plate → nothing
	bucketIDs          = []byte("ids")          // reservation id → plate
	bucketPermits      = []byte("permits")      // plate 0 permit id → permit
	bucketPermitIDs    = []byte("permit_ids")   // permit id → plate
	bucketPresence     = []byte("presence")     // plate → presence JSON
	bucketMeta         = []byte("meta")         // last_seq → uint64
	bucketOutbox       = []byte("outbox")       // uint64 key → outbox entry

	keyLastSeq = []byte("last_seq")
)

// Options tunes Open; the zero value is what production wants.
type Options struct {
	// InitialMmapSize maps this much of the file at open, so the file
	// growing does not remap (which briefly blocks readers) until it is
	// larger than this.
	InitialMmapSize int
	// MaxBatch caps the records in one group commit; 1000 when zero.
	MaxBatch int
	// MaxHeld caps the records held in memory while the disk refuses
	// writes (see writer); 100,000 when zero — days of a busy lot's events,
	// tens of megabytes.
	MaxHeld int
	// RetryEvery is how often a refused commit is tried again; 1s when zero.
	RetryEvery time.Duration
	Logger     *slog.Logger
}

// Store is a bbolt-backed edge.Store, edge.SyncStore and edge.Outbox.
type Store struct {
	db       *bolt.DB
	log      *slog.Logger
	maxBatch int
	key      ed25519.PrivateKey // signs every gate event in the outbox

	lastSeq  atomic.Int64
	depth    atomic.Int64
	writable atomic.Bool
	heldN    atomic.Int64

	maxHeld    int
	retryEvery time.Duration
	signal     chan struct{}

	// Presence is small (cars inside one lot) and read on every decision,
	// so it is kept in memory as well, and changed there when a Record is
	// queued: the next read must see a car that just entered even before
	// the commit.
	pmu       sync.RWMutex
	presence  map[string]edge.Presence
	presFold  map[string]map[string]struct{}
	presTrunc map[string]map[string]struct{}

	qmu    sync.RWMutex
	closed bool
	queue  chan *pending
	done   chan struct{}
}

type pending struct {
	rec     edge.Record
	payload []byte // set by seal
	err     error  // set by seal when the event cannot be encoded
	done    chan error
}

// Open opens or creates the store file at path.
func Open(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         2 * time.Second, // another agent holding the file is an error, not a hang
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: opts.InitialMmapSize,
	})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{
		db:        db,
		log:       opts.Logger,
		maxBatch:  opts.MaxBatch,
		signal:    make(chan struct{}, 1),
		presence:  map[string]edge.Presence{},
		presFold:  map[string]map[string]struct{}{},
		presTrunc: map[string]map[string]struct{}{},
		queue:     make(chan *pending, 4096),
		done:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBatch <= 0 {
		s.maxBatch = 1000
	}
	s.maxHeld, s.retryEvery = opts.MaxHeld, opts.RetryEvery
	if s.maxHeld <= 0 {
		s.maxHeld = 100_000
	}
	if s.retryEvery <= 0 {
		s.retryEvery = time.Second
	}
	s.writable.Store(true)
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	go s.writer()
	return s, nil
}

func (s *Store) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketReservations, bucketFold, bucketTrunc, bucketIDs,
			bucketPermits, bucketPermitIDs, bucketPresence, bucketMeta, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		key, err := loadKey(tx)
		if err != nil {
			return err
		}
		s.key = key
		if v := tx.Bucket(bucketMeta).Get(keyLastSeq); len(v) == 8 {
			s.lastSeq.Store(int64(binary.BigEndian.Uint64(v)))
		}
		err = tx.Bucket(bucketPresence).ForEach(func(k, v []byte) error {
			var p edge.Presence
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("presence %s: %w", k, err)
			}
			s.setPresence(string(k), &p)
			return nil
		})
		if err != nil {
			return err
		}
		s.depth.Store(int64(tx.Bucket(bucketOutbox).Stats().KeyN))
		return nil
	})
}

// Close finishes queued commits and closes the file.
func (s *Store) Close() error {
	s.qmu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.qmu.Unlock()
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.db.Path() }

// Lookup implements edge.Store.
func (s *Store) Lookup(plate string) (edge.View, error) {
	v := edge.View{Exact: edge.PlateState{Plate: plate}}
	fold := protocol.FoldPlate(plate)
	err := s.db.View(func(tx *bolt.Tx) error {
		res, pms := tx.Bucket(bucketReservations), tx.Bucket(bucketPermits)
		var err error
		if v.Exact, err = scanState(res, pms, plate); err != nil {
			return err
		}
		var cands []string
		cands = appendPlates(cands, tx.Bucket(bucketFold), fold, plate)
		if len(plate) >= MinTruncatedRead {
			cands = appendPlates(cands, tx.Bucket(bucketTrunc), fold, plate)
		}
		for _, c := range cands {
			ps, err := scanState(res, pms, c)
			if err != nil {
				return err
			}
			v.Candidates = append(v.Candidates, ps)
		}
		return nil
	})
	if err != nil {
		return edge.View{}, fmt.Errorf("lookup: %w", err)
	}

	s.pmu.RLock()
	defer s.pmu.RUnlock()
	if p, ok := s.presence[plate]; ok {
		v.Exact.Presence = &p
	}
	for i := range v.Candidates {
		if p, ok := s.presence[v.Candidates[i].Plate]; ok {
			v.Candidates[i].Presence = &p
		}
	}
	// A car inside whose reservations were since deleted is in no index on
	// disk, but it must still be found by a noisy read at the exit.
	add := func(set map[string]struct{}) {
		for other := range set {
			if other == plate || hasPlate(v.Candidates, other) {
				continue
			}
			p := s.presence[other]
			v.Candidates = append(v.Candidates, edge.PlateState{Plate: other, Presence: &p})
		}
	}
	add(s.presFold[fold])
	if len(plate) >= MinTruncatedRead {
		add(s.presTrunc[fold])
	}
	return v, nil
}

func hasPlate(states []edge.PlateState, plate string) bool {
	for _, s := range states {
		if s.Plate == plate {
			return true
		}
	}
	return false
}

// appendPlates adds the plates indexed under key in b, other than skip and
// those already in dst.
func appendPlates(dst []string, b *bolt.Bucket, key, skip string) []string {
	prefix := append([]byte(key), 0)
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		p := string(k[len(prefix):])
		if p == skip || contains(dst, p) {
			continue
		}
		dst = append(dst, p)
	}
	return dst
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// scanState reads a plate's reservations and permits.
func scanState(res, pms *bolt.Bucket, plate string) (edge.PlateState, error) {
	ps := edge.PlateState{Plate: plate}
	var err error
	if ps.Reservations, err = scanPlate(res, plate); err != nil {
		return ps, err
	}
	ps.Permits, err = scanPermits(pms, plate)
	return ps, err
}

func scanPlate(b *bolt.Bucket, plate string) ([]edge.Reservation, error) {
	prefix := append([]byte(plate), 0)
	var out []edge.Reservation
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		r, err := decodeReservation(plate, string(k[len(prefix):]), v)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) > 1 {
		edge.SortReservations(out)
	}
	return out, nil
}

// LastSeq implements edge.Store and edge.SyncStore.
func (s *Store) LastSeq() (int64, error) { return s.lastSeq.Load(), nil }

// Apply implements edge.SyncStore. The caller verified the signatures.
func (s *Store) Apply(changes []protocol.ReservationChange) (int64, error) {
	var last int64
	s.forgetInside(changes)
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyLastSeq); len(v) == 8 {
			last = int64(binary.BigEndian.Uint64(v))
		}
		start := last
		for i := range changes {
			c := &changes[i]
			if c.Seq <= last {
				continue
			}
			if c.Seq != last+1 {
				return fmt.Errorf("change %d after %d: gap", c.Seq, last)
			}
			var err error
			switch c.Kind {
			case protocol.KindReservation:
				err = applyChange(tx, c)
			case protocol.KindPermit:
				err = applyPermit(tx, c)
			case protocol.KindPresenceReset:
				err = applyReset(tx, c)
			}
			// Any other kind changes nothing here: its seq is applied
			// all the same, so a kind this build does not know cannot
			// hold up the ones after it (the link has verified and
			// counted it).
			if err != nil {
				return fmt.Errorf("change %d: %w", c.Seq, err)
			}
			last = c.Seq
		}
		if last == start {
			return nil
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(last))
		return meta.Put(keyLastSeq, b[:])
	})
	if err != nil {
		return s.lastSeq.Load(), fmt.Errorf("apply changes: %w", err)
	}
	s.lastSeq.Store(last)
	return last, nil
}

func applyChange(tx *bolt.Tx, c *protocol.ReservationChange) error {
	r := c.Reservation
	if c.Op != protocol.OpUpsert && c.Op != protocol.OpDelete || r.ID == "" {
		return nil // signed, but nothing this build can use (protocol.ErrUnknownChange)
	}
	if err := deleteReservation(tx, r.ID); err != nil {
		return err
	}
	if c.Op == protocol.OpDelete || !r.Status.OpensGate() {
		// Only what may open the gate is kept; any other status is a delete
		// whatever the op says.
		return nil
	}
	plate, err := protocol.NormalizePlate(r.Plate)
	if err != nil {
		// No read can ever match it; keeping the seq moving matters more.
		return nil
	}
	if err := tx.Bucket(bucketReservations).Put(resKey(plate, r.ID), encodeReservation(r)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketIDs).Put([]byte(r.ID), []byte(plate)); err != nil {
		return err
	}
	return indexPlate(tx, plate)
}

// indexPlate adds a plate to the look-alike and truncation indexes.
func indexPlate(tx *bolt.Tx, plate string) error {
	fold := protocol.FoldPlate(plate)
	if err := tx.Bucket(bucketFold).Put(resKey(fold, plate), nil); err != nil {
		return err
	}
	if len(plate) > MinTruncatedRead {
		if err := tx.Bucket(bucketTrunc).Put(resKey(fold[:len(fold)-1], plate), nil); err != nil {
			return err
		}
	}
	return nil
}

// unindexPlate removes a plate from the indexes unless it still has a
// reservation or a permit.
func unindexPlate(tx *bolt.Tx, plate string) error {
	prefix := append([]byte(plate), 0)
	for _, b := range [][]byte{bucketReservations, bucketPermits} {
		if k, _ := tx.Bucket(b).Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return nil
		}
	}
	fold := protocol.FoldPlate(plate)
	if err := tx.Bucket(bucketFold).Delete(resKey(fold, plate)); err != nil {
		return err
	}
	if len(plate) > MinTruncatedRead {
		return tx.Bucket(bucketTrunc).Delete(resKey(fold[:len(fold)-1], plate))
	}
	return nil
}

func deleteReservation(tx *bolt.Tx, id string) error {
	return deleteIndexed(tx, bucketIDs, bucketReservations, id)
}

// deleteIndexed removes the row stored under (plate, id) in rows, whose
// plate the ids bucket maps id to — reservations and permits are kept
// alike — and takes the plate out of the look-alike indexes when it was
// the plate's last row. Deleting an unknown id does nothing.
func deleteIndexed(tx *bolt.Tx, idBucket, rowBucket []byte, id string) error {
	ids := tx.Bucket(idBucket)
	p := ids.Get([]byte(id))
	if p == nil {
		return nil
	}
	plate := string(p)
	if err := ids.Delete([]byte(id)); err != nil {
		return err
	}
	if err := tx.Bucket(rowBucket).Delete(resKey(plate, id)); err != nil {
		return err
	}
	return unindexPlate(tx, plate)
}

func resKey(a, b string) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

func encodeReservation(r protocol.Reservation) []byte {
	v := make([]byte, 16, 16+len(r.Status))
	binary.BigEndian.PutUint64(v[0:], uint64(r.StartsAt.UnixNano()))
	binary.BigEndian.PutUint64(v[8:], uint64(r.EndsAt.UnixNano()))
	return append(v, r.Status...)
}

func decodeReservation(plate, id string, v []byte) (edge.Reservation, error) {
	if len(v) < 16 {
		return edge.Reservation{}, fmt.Errorf("reservation %s: %d-byte value", id, len(v))
	}
	return edge.Reservation{
		ID:       id,
		Plate:    plate,
		StartsAt: time.Unix(0, int64(binary.BigEndian.Uint64(v[0:]))).UTC(),
		EndsAt:   time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
		Status:   protocol.Status(v[16:]),
	}, nil
}

// Presence returns every plate inside, for operators and tests.
func (s *Store) Presence() map[string]edge.Presence {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	out := make(map[string]edge.Presence, len(s.presence))
	for k, v := range s.presence {
		out[k] = v
	}
	return out
}

// setPresence changes the in-memory presence; p nil removes the plate.
// The caller holds pmu or has the store to itself.
func (s *Store) setPresence(plate string, p *edge.Presence) {
	fold := protocol.FoldPlate(plate)
	var trunc string
	if len(plate) > MinTruncatedRead {
		trunc = fold[:len(fold)-1]
	}
	if p == nil {
		delete(s.presence, plate)
		removeFrom(s.presFold, fold, plate)
		if trunc != "" {
			removeFrom(s.presTrunc, trunc, plate)
		}
		return
	}
	s.presence[plate] = *p
	addTo(s.presFold, fold, plate)
	if trunc != "" {
		addTo(s.presTrunc, trunc, plate)
	}
}

func addTo(m map[string]map[string]struct{}, key, plate string) {
	set := m[key]
	if set == nil {
		set = map[string]struct{}{}
		m[key] = set
	}
	set[plate] = struct{}{}
}

func removeFrom(m map[string]map[string]struct{}, key, plate string) {
	if set := m[key]; set != nil {
		delete(set, plate)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}
