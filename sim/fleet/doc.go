// Package fleet runs many lots against one parkcloud and one Mosquitto and
// measures what the product does at that size: a thousand lots through the
// production broker configuration (deploy/mosquitto: TLS, the per-lot ACL,
// a password file with each lot's edge token), their edge agents built in
// this one process from the real edge packages — bbolt store, mqttlink sync,
// the decision function behind edge.Agent — each with its own store file,
// its own MQTT connections under its lot's credentials and its own signing
// key registered with the cloud. Bookings are held through the API and paid
// at the Stripe stand-in at a steady rate across the lots; the run measures
// confirmed → applied at the lot's edge, the relay's messages per second and
// per core, a broker restart with every session persistent (time until every
// edge is back and caught up), and memory per agent. It then checks, from
// the edges' stores and the cloud's change log, that every confirmed booking
// reached its edge, every edge caught up, and every booked car is let in.
package fleet
