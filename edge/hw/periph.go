package hw

import (
	"fmt"
	"strings"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

var (
	hostOnce sync.Once
	hostErr  error
)

// OpenPin returns the board's pin by name or alias ("GPIO17", "P1_11"),
// loading periph's host drivers on first use.
func OpenPin(name string) (gpio.PinIO, error) {
	hostOnce.Do(func() {
		if _, err := host.Init(); err != nil {
			hostErr = fmt.Errorf("hw: periph host init: %w", err)
		}
	})
	if hostErr != nil {
		return nil, hostErr
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("hw: no pin %q on this board", name)
	}
	return p, nil
}

// Pin roles of a gate.
const (
	RoleBarrier  = "barrier"
	RoleLoop     = "loop"
	RoleCamera   = "camera"
	RoleOverride = "override"
)

// GatePins names the pins of one gate; only Barrier is required.
type GatePins struct {
	Barrier  string
	Loop     string
	Camera   string
	Override string
}

// ParsePins reads PARKGATE_PINS: comma-separated gate.role=PIN entries such
// as "entry-1.barrier=GPIO17,entry-1.loop=GPIO27,entry-1.camera=GPIO22,
// entry-1.override=GPIO23". Roles are barrier, loop, camera and override.
func ParsePins(s string) (map[string]GatePins, error) {
	out := map[string]GatePins{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, name, ok := strings.Cut(part, "=")
		gate, role, ok2 := strings.Cut(strings.TrimSpace(key), ".")
		name = strings.TrimSpace(name)
		if !ok || !ok2 || gate == "" || name == "" {
			return nil, fmt.Errorf("pin %q: want gate.role=PIN", part)
		}
		gp := out[gate]
		switch role {
		case RoleBarrier:
			gp.Barrier = name
		case RoleLoop:
			gp.Loop = name
		case RoleCamera:
			gp.Camera = name
		case RoleOverride:
			gp.Override = name
		default:
			return nil, fmt.Errorf("pin %q: unknown role %q", part, role)
		}
		out[gate] = gp
	}
	return out, nil
}
