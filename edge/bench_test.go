package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/edge"
	"github.com/parkgate/parkgate/edge/bolt"
	"github.com/parkgate/parkgate/edge/httpapi"
	"github.com/parkgate/parkgate/edge/hw"
	"github.com/parkgate/parkgate/edge/hw/hwtest"
	"github.com/parkgate/parkgate/protocol"
)

// fixtureSize is the number of reservations the benchmarks load.
const fixtureSize = 1_000_000

var (
	fixtureOnce   sync.Once
	fixtureDir    string
	fixturePath   string
	fixturePlates []string
	fixtureErr    error
)

func TestMain(m *testing.M) {
	if os.Getenv(rssChildEnv) != "" {
		rssChild()
		return
	}
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// fixture builds, once per process, a store holding fixtureSize confirmed
// reservations (one per plate, all covering the next days), applied as a
// real change log in large transactions, and returns its path and plates.
func fixture(b *testing.B) (string, []string) {
	b.Helper()
	fixtureOnce.Do(func() {
		start := time.Now()
		fixtureDir, fixtureErr = os.MkdirTemp("", "parkedge-bench-")
		if fixtureErr != nil {
			return
		}
		fixturePath = filepath.Join(fixtureDir, "edge.db")
		s, err := bolt.Open(fixturePath, nil)
		if err != nil {
			fixtureErr = err
			return
		}
		defer s.Close()
		fixturePlates = genPlates(fixtureSize)
		now := time.Now().UTC()
		var batch []protocol.ReservationChange
		for i, plate := range fixturePlates {
			seq := int64(i + 1)
			batch = append(batch, protocol.ReservationChange{V: 1, LotID: "lot-1", Seq: seq, Op: protocol.OpUpsert,
				Reservation: protocol.Reservation{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", seq), Plate: plate,
					StartsAt: now.Add(-time.Hour), EndsAt: now.Add(72 * time.Hour), Status: protocol.StatusConfirmed}})
			if len(batch) == 100_000 {
				if _, err := s.Apply(batch); err != nil {
					fixtureErr = err
					return
				}
				batch = batch[:0]
			}
		}
		runtime.GC()
		debug.FreeOSMemory()
		fi, _ := os.Stat(fixturePath)
		fmt.Fprintf(os.Stderr, "fixture: %d reservations in %v, file %d MiB\n", fixtureSize, time.Since(start).Round(time.Millisecond), fi.Size()>>20)
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixturePath, fixturePlates
}

// genPlates returns n distinct random 7-character plates, the same on
// every call.
func genPlates(n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ACEFGHJKLMNPRTUVWXY0123456789" // no look-alikes: every read is exact and folds to itself
	seen := make(map[string]bool, n)
	plates := make([]string, 0, n)
	for len(plates) < n {
		var p [7]byte
		for i := range p {
			p[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if plate := string(p[:]); !seen[plate] {
			seen[plate] = true
			plates = append(plates, plate)
		}
	}
	// In key order the bulk load appends to the right edge of every index
	// instead of rewriting the whole tree in each transaction; reads still
	// pick plates at random.
	slices.Sort(plates)
	return plates
}

// benchAgent opens the fixture and builds an agent with an entry and an
// exit gate on fake pins. The pulse is long: the benchmark ends each pulse
// itself so every open is a fresh rising edge.
func benchAgent(b *testing.B) (*edge.Agent, *bolt.Store, map[string]*hwtest.Pin, map[string]*hw.Barrier, []string) {
	path, plates := fixture(b)
	s, err := bolt.Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	pins, barriers := map[string]*hwtest.Pin{}, map[string]*hw.Barrier{}
	var gates []edge.GateConfig
	for _, g := range []edge.Gate{{ID: "entry-1", Direction: "entry"}, {ID: "exit-1", Direction: "exit"}, {ID: "busy-1", Direction: "entry"}} {
		pins[g.ID] = hwtest.NewPin(g.ID + ".barrier")
		barriers[g.ID], _ = hw.NewBarrier(pins[g.ID], time.Hour)
		gates = append(gates, edge.GateConfig{Gate: g, Barrier: barriers[g.ID]})
	}
	a, err := edge.NewAgent(edge.Config{LotID: "lot-1", Store: s, Gates: gates, Policy: edge.DefaultPolicy()})
	if err != nil {
		b.Fatal(err)
	}
	return a, s, pins, barriers, plates
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func reportLatencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 0.50).Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1e3, "max-µs")
}

// BenchmarkPlateReadToBarrier measures, with 1,000,000 reservations in the
// store, the time from a plate read entering the agent to the barrier pin's
// recorded rising edge. Reads alternate entry and exit of random plates, so
// every read opens. Direct calls the agent as the HTTP handler does; HTTP
// goes through the edge API on loopback as a camera would.
func BenchmarkPlateReadToBarrier(b *testing.B) {
	a, _, pins, barriers, plates := benchAgent(b)
	rng := rand.New(rand.NewPCG(3, 4))
	measure := func(b *testing.B, read func(gate, plate string)) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			plate := plates[rng.IntN(len(plates))]
			for _, gate := range []string{"entry-1", "exit-1"} {
				start := time.Now()
				read(gate, plate)
				edges := pins[gate].TakeEdges()
				if len(edges) == 0 || edges[0].Level != gpio.High {
					b.Fatalf("%s %s: no rising edge (%v)", gate, plate, edges)
				}
				lat = append(lat, edges[0].At.Sub(start))
				_ = barriers[gate].Close()
				pins[gate].TakeEdges()
			}
		}
		b.StopTimer()
		reportLatencies(b, lat)
	}
	b.Run("Direct", func(b *testing.B) {
		measure(b, func(gate, plate string) {
			if _, err := a.HandleRead(context.Background(), edge.PlateRead{GateID: gate, Plate: plate, Confidence: 0.95}); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("UnderWriteLoad", func(b *testing.B) {
		// Another gate's overrides keep the writer committing (and
		// fsyncing) the whole time: the decision path must not wait for it.
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = a.Override(context.Background(), "busy-1")
				pins["busy-1"].TakeEdges()
			}
		}()
		measure(b, func(gate, plate string) {
			if _, err := a.HandleRead(context.Background(), edge.PlateRead{GateID: gate, Plate: plate, Confidence: 0.95}); err != nil {
				b.Fatal(err)
			}
		})
		close(stop)
		<-done
	})
	b.Run("HTTP", func(b *testing.B) {
		srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{LotID: "lot-1", Agent: a}))
		defer srv.Close()
		client := srv.Client()
		measure(b, func(gate, plate string) {
			body := `{"gate_id":"` + gate + `","plate":"` + plate + `","confidence":0.95}`
			resp, err := client.Post(srv.URL+"/v1/plate-reads", "application/json", strings.NewReader(body))
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("POST: %v %v", resp, err)
			}
			resp.Body.Close()
		})
	})
}

// BenchmarkDecide is the pure decision alone, for scale.
func BenchmarkDecide(b *testing.B) {
	now := time.Now()
	v := edge.View{Exact: edge.PlateState{Plate: "AB123C", Reservations: []edge.Reservation{{ID: "r", Plate: "AB123C", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour)}}}}
	r := edge.PlateRead{GateID: "g", Direction: "entry", Plate: "AB123C", Confidence: 0.9}
	p := edge.DefaultPolicy()
	for b.Loop() {
		edge.Decide(r, v, now, p)
	}
}

const rssChildEnv = "PARKGATE_BENCH_RSS_CHILD_DB"

// rssChild is the agent process whose memory BenchmarkResidentMemory
// measures: it opens the store, decides on reads of random plates, and
// prints its resident set and Go heap.
func rssChild() {
	path := os.Getenv(rssChildEnv)
	n, _ := strconv.Atoi(os.Getenv("PARKGATE_BENCH_RSS_READS"))
	s, err := bolt.Open(path, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	pin := hwtest.NewPin("b")
	barrier, _ := hw.NewBarrier(pin, time.Millisecond)
	a, _ := edge.NewAgent(edge.Config{LotID: "lot-1", Store: s, Policy: edge.DefaultPolicy(),
		Gates: []edge.GateConfig{{Gate: edge.Gate{ID: "exit-1", Direction: "exit"}, Barrier: barrier}}})
	plates := genPlates(fixtureSize)
	var wg sync.WaitGroup
	for w := range 8 { // eight cameras: their events share commits
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(5, uint64(w)))
			for range n / 8 {
				if _, err := a.HandleRead(context.Background(), edge.PlateRead{GateID: "exit-1", Plate: plates[rng.IntN(len(plates))], Confidence: 0.9}); err != nil {
					fmt.Println("error", err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()
	plates = nil
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status := procStatus()
	fmt.Printf("rss_kib %d\nrss_anon_kib %d\nrss_file_kib %d\nheap_inuse %d\n", status["VmRSS"], status["RssAnon"], status["RssFile"], ms.HeapInuse)
	_ = s.Close()
}

// procStatus reads the kB figures of /proc/self/status.
func procStatus() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); ok && err == nil {
			out[name] = v
		}
	}
	return out
}

// BenchmarkResidentMemory runs an agent on the 1,000,000-reservation store
// in a fresh process, lets it decide on 20,000 reads of random plates and
// reports its resident set, split into anonymous memory (Go heap, stacks)
// and file-backed pages of the store that the reads touched through bbolt's
// mmap: those are page cache the kernel can reclaim, and they grow towards
// the file size as more plates are read.
func BenchmarkResidentMemory(b *testing.B) {
	path, _ := fixture(b)
	for b.Loop() {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), rssChildEnv+"="+path, "PARKGATE_BENCH_RSS_READS=20000")
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("child: %v %s", err, out)
		}
		var rss, anon, file, heap int64
		for _, line := range bytes.Split(out, []byte("\n")) {
			fmt.Sscanf(string(line), "rss_kib %d", &rss)
			fmt.Sscanf(string(line), "rss_anon_kib %d", &anon)
			fmt.Sscanf(string(line), "rss_file_kib %d", &file)
			fmt.Sscanf(string(line), "heap_inuse %d", &heap)
		}
		if rss <= 0 {
			b.Fatalf("child output %s", out)
		}
		fi, _ := os.Stat(path)
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
		b.ReportMetric(float64(anon)/1024, "rss-anon-MiB")
		b.ReportMetric(float64(file)/1024, "rss-file-MiB")
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
	}
}
