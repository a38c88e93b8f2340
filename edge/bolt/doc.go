// Package bolt is the agent's store on bbolt: reservations indexed by
// normalised plate and by look-alike key (protocol.FoldPlate) of the plate
// and of the plate without its last character, so a noisy read finds its
// candidates with a few B+tree seeks; presence (who is inside); the last
// applied sequence number; and the outbox of gate events. Every write is a
// bbolt transaction with fsync, so the file survives kill -9 at any moment.
// Gate events are written by one goroutine that commits whatever has queued
// while the previous commit was syncing (group commit): the fsync is never on
// the path from plate read to barrier, and a burst of reads costs one fsync,
// not one each. The store also holds the agent's ed25519 key, made on its
// first open; the writer signs each gate event with it as it commits it, so
// everything that leaves through the outbox is signed.
package bolt
