package httpapi_test

import (
	"os"
	"strconv"

	"github.com/parkgate/parkgate/cloud/postgres/pgtest"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

func pgURL() string { return pgtest.URL() }

// benchN is a benchmark's request count: def, or BENCH_N when set, for a
// quick look.
func benchN(def int) int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_N")); err == nil && n > 0 {
		return n
	}
	return def
}
