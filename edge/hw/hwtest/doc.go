// Package hwtest holds fakes of the gate's hardware, kept apart from the real
// adapters in edge/hw in the manner of periph's gpiotest: Pin implements
// gpio.PinIO in memory and records every edge with its time, so tests and the
// simulator can measure plate read → barrier high and drive the inputs, and
// PinsHandler lets a simulator in another process play an agent's fake pins
// over HTTP. It is a kit for tests and for parkedge's sim mode, and imports
// nothing of edge/hw, so edge/hw's own tests can use it.
package hwtest
