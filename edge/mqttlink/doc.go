// Package mqttlink is the agent's link to the cloud: a paho MQTT client with
// a fixed client id and a persistent session (clean session off, QoS 1,
// automatic reconnect across a list of brokers) that receives the lot's
// reservation changes and publishes its gate events, plus HTTP catch-up
// through go-retryablehttp.
//
// Changes are applied strictly in sequence order and only after their
// ed25519 signature verifies against the cloud's keys: brokers redeliver
// queued messages out of order, so a reorder buffer holds early arrivals; a
// gap that does not fill within GapWait, a fresh store, every start and
// every (re)connect trigger catch-up from the cloud's change log, whose
// pages feed the same ordered applier, so live messages arriving meanwhile
// are kept, not lost. While the broker is unreachable the link also catches
// up every CatchUpInterval, so a booking confirmed during a broker-only
// outage still reaches the gate.
//
// The store signs every gate event with the agent's own ed25519 key; the
// link registers its public half with the cloud (POST
// /v1/edge/lots/{lot_id}/keys, retried until accepted) and publishes no
// gate event before then, because the cloud drops events it cannot verify.
//
// Gate events leave the store's outbox only when the broker acknowledged
// them (PUBACK) on the connection they were sent on. paho completes the
// token of an in-flight publish when it resends it after a reconnect,
// before any PUBACK: such a completion proves nothing. The link therefore
// counts connection attempts and session resumes (paho reads its store once
// per resume) and trusts a completion only if neither changed between the
// publish and the acknowledgement. Anything not trusted is sent again from
// the outbox, oldest first; a duplicate is harmless because the cloud
// ingests by event id.
package mqttlink
