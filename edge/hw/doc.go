// Package hw connects the agent to the gate's hardware through periph.io's
// gpio interfaces: a Barrier that pulses the relay on a gpio.PinOut, a Loop
// that watches the induction loop (a car arriving triggers the camera) and a
// Button for the manual override input, each taking the narrowest pin
// interface it needs. OpenPin finds real pins by name through periph's host
// drivers on a board. Fakes live apart in hw/hwtest, so every type here is a
// real adapter; anything that takes a gpio pin takes a hwtest.Pin as well.
package hw
