package hw

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// poll bounds how long Run blocks in WaitForEdge before looking at its
// context: periph offers no way to cancel a wait.
const poll = 200 * time.Millisecond

// Loop watches an induction loop detector. A car arriving over the loop
// drives the input high; Loop then pulses the camera trigger so the camera
// reads the plate (and posts it to the agent's HTTP API), and calls
// OnArrival.
type Loop struct {
	Pin       gpio.PinIn
	Camera    gpio.PinOut   // may be nil: a free-running camera needs no trigger
	Trigger   time.Duration // camera trigger pulse; 50ms when zero
	Holdoff   time.Duration // edges this soon after an arrival are bounce; 500ms when zero
	OnArrival func()        // may be nil
}

// Run watches until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	trigger, holdoff := l.Trigger, l.Holdoff
	if trigger <= 0 {
		trigger = 50 * time.Millisecond
	}
	if holdoff <= 0 {
		holdoff = 500 * time.Millisecond
	}
	if l.Camera != nil {
		if err := l.Camera.Out(gpio.Low); err != nil {
			return fmt.Errorf("camera trigger %s: %w", l.Camera, err)
		}
	}
	return watch(ctx, l.Pin, gpio.PullDown, gpio.RisingEdge, gpio.High, holdoff, func() {
		if l.Camera != nil {
			if err := l.Camera.Out(gpio.High); err == nil {
				time.AfterFunc(trigger, func() { _ = l.Camera.Out(gpio.Low) })
			}
		}
		if l.OnArrival != nil {
			l.OnArrival()
		}
	})
}

// Button watches a push button or key switch, such as the manual override.
type Button struct {
	Pin       gpio.PinIn
	ActiveLow bool          // wired to ground with a pull-up, as most panel buttons are
	Holdoff   time.Duration // presses this soon after one are bounce; 1s when zero
	OnPress   func()
}

// Run watches until ctx ends.
func (b *Button) Run(ctx context.Context) error {
	holdoff := b.Holdoff
	if holdoff <= 0 {
		holdoff = time.Second
	}
	pull, edge, active := gpio.PullDown, gpio.RisingEdge, gpio.High
	if b.ActiveLow {
		pull, edge, active = gpio.PullUp, gpio.FallingEdge, gpio.Low
	}
	return watch(ctx, b.Pin, pull, edge, active, holdoff, b.OnPress)
}

func watch(ctx context.Context, p gpio.PinIn, pull gpio.Pull, edge gpio.Edge, active gpio.Level, holdoff time.Duration, fire func()) error {
	if err := p.In(pull, edge); err != nil {
		return fmt.Errorf("input %s: %w", p, err)
	}
	var last time.Time
	for ctx.Err() == nil {
		if !p.WaitForEdge(poll) {
			continue
		}
		// Read confirms the level: a glitch shorter than the read is noise.
		if p.Read() != active || time.Since(last) < holdoff {
			continue
		}
		last = time.Now()
		fire()
	}
	return nil
}
