package fleet

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/internal/promtext"
)

// clockTicks is USER_HZ, the unit of /proc/*/stat CPU times: 100 on every
// Linux this runs on.
const clockTicks = 100

// cpuSeconds is the CPU time (user + system) of pid and, with children, of
// every process whose parent it is (a postmaster's backends).
func cpuSeconds(pid int, children bool) float64 {
	if pid <= 0 {
		return 0
	}
	total := procCPU(pid)
	if children {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			c, err := strconv.Atoi(e.Name())
			if err != nil || c == pid {
				continue
			}
			if ppid, _ := procStat(c, 4); ppid == pid {
				total += procCPU(c)
			}
		}
	}
	return total
}

func procCPU(pid int) float64 {
	u, err1 := procStat(pid, 14) // utime
	s, err2 := procStat(pid, 15) // stime
	if err1 != nil || err2 != nil {
		return 0
	}
	return float64(u+s) / clockTicks
}

// procStat returns field n (1-based, as proc(5) numbers them: 4 ppid, 14
// utime, 15 stime) of /proc/pid/stat, counted after the command's closing
// parenthesis so a name with spaces cannot shift it.
func procStat(pid, n int) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	s := string(b)
	j := strings.LastIndexByte(s, ')')
	if j < 0 {
		return 0, fmt.Errorf("stat of %d: no command", pid)
	}
	f := strings.Fields(s[j+1:]) // f[0] is field 3 (state)
	if k := n - 3; k >= 0 && k < len(f) {
		return strconv.Atoi(f[k])
	}
	return 0, fmt.Errorf("stat of %d: no field %d", pid, n)
}

// rssBytes is the resident set of pid from /proc/pid/status (VmRSS).
func rssBytes(pid int) int64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// memory is this process's heap in use and resident set, after a
// collection so that garbage does not count.
type memory struct{ heap, rss int64 }

func measureMemory() memory {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{heap: int64(ms.HeapInuse), rss: rssBytes(os.Getpid())}
}

// Percentiles summarise a set of durations.
type Percentiles struct {
	N             int           `json:"n"`
	P50, P99, Max time.Duration `json:"-"`
	P50ms         float64       `json:"p50_ms"`
	P99ms         float64       `json:"p99_ms"`
	MaxMs         float64       `json:"max_ms"`
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
	}
	p := Percentiles{N: len(s), P50: at(0.50), P99: at(0.99), Max: s[len(s)-1]}
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }
	p.P50ms, p.P99ms, p.MaxMs = ms(p.P50), ms(p.P99), ms(p.Max)
	return p
}

func (p Percentiles) String() string {
	if p.N == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s  (n=%d)", round(p.P50), round(p.P99), round(p.Max), p.N)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// metric reads one unlabelled counter or gauge from a Prometheus text page.
func metric(ctx context.Context, client *http.Client, url, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	m, err := promtext.Unlabelled(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	v, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("metrics: %s not found at %s", name, url)
	}
	return v, nil
}
