// Package bustest is the contract suite of the payment-event bus, in the
// manner of River's riverdrivertest: every backend's tests call Exercise
// with a constructor of a fresh bus, and so every backend is held to the
// same promises — each published message is delivered at least once, a
// failed or abandoned message comes back, and one key's messages are
// handled one at a time in publish order. Tests wait on recorded events
// with deadlines, never on fixed sleeps.
package bustest
