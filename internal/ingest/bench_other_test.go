//go:build !unix

package ingest_test

import "time"

// cpuTime is not measured here: BenchmarkIngest then leaves out its CPU figures.
func cpuTime() time.Duration { return 0 }
