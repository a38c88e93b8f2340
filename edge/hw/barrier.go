package hw

import (
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/edge"
)

var _ edge.Barrier = (*Barrier)(nil)

// Barrier pulses a barrier relay: the output goes high for the pulse length
// and back low, as barrier controllers expect an "open" contact closure.
type Barrier struct {
	pin   gpio.PinOut
	pulse time.Duration

	mu    sync.Mutex
	high  bool
	until time.Time
	timer *time.Timer
}

// NewBarrier sets the relay pin low and returns the barrier.
func NewBarrier(p gpio.PinOut, pulse time.Duration) (*Barrier, error) {
	if pulse <= 0 {
		return nil, fmt.Errorf("barrier %s: pulse must be positive", p)
	}
	if err := p.Out(gpio.Low); err != nil {
		return nil, fmt.Errorf("barrier %s: %w", p, err)
	}
	return &Barrier{pin: p, pulse: pulse}, nil
}

// Open sets the relay high now and arranges for it to drop after the pulse.
// Opening while the pulse is on extends it without a new edge, so two cars
// in quick succession do not make the relay chatter.
func (b *Barrier) Open() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.high {
		if err := b.pin.Out(gpio.High); err != nil {
			return fmt.Errorf("barrier %s: %w", b.pin, err)
		}
		b.high = true
	}
	b.until = time.Now().Add(b.pulse)
	if b.timer == nil {
		b.timer = time.AfterFunc(b.pulse, b.release)
	} else {
		b.timer.Reset(b.pulse)
	}
	return nil
}

// release drops the relay unless a later Open extended the pulse; a timer
// that fires late or twice finds until in the future and does nothing.
func (b *Barrier) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.high || time.Now().Before(b.until) {
		return
	}
	_ = b.pin.Out(gpio.Low) // nothing to tell: a stuck relay shows in IsOpen and on the pin
	b.high = false
}

// IsOpen reports whether the relay output is high.
func (b *Barrier) IsOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.high
}

// Close ends any pulse now, so the agent never exits leaving a relay held.
func (b *Barrier) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
	if !b.high {
		return nil
	}
	b.high = false
	if err := b.pin.Out(gpio.Low); err != nil {
		return fmt.Errorf("barrier %s: %w", b.pin, err)
	}
	return nil
}
