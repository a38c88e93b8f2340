// Package hw connects the agent to the gate's hardware through periph.io's
// gpio interfaces: a Barrier that pulses the relay on a gpio.PinOut, a Loop
// that watches the induction loop (a car arriving triggers the camera) and a
// Button for the manual override input, each taking the narrowest pin
// interface it needs. OpenPin finds real pins by name through periph's host
// drivers on a board; FakePin is an ordinary importable fake (in the manner
// of periph's gpiotest) that records every edge with its time, so tests and
// the simulator can measure plate read → barrier high and drive the inputs.
package hw
