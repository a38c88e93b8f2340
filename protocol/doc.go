// Package protocol is the whole of what the cloud and the edge agents share:
// MQTT topic names, the versioned messages that travel on them, the ed25519
// signing that lets an edge trust a reservation change whoever published it,
// and plate normalisation, so that a plate typed by a driver and a plate read
// by a camera compare equal. It imports only the standard library, so both
// sides (and third-party tools) can depend on it without pulling each other
// in — with one exception the input rules ask for: golang.org/x/text, whose
// Unicode decomposition folds a plate's diacritics (Ü→U) instead of a hand
// table of accents that would always miss one.
package protocol
