//go:build !linux

package ingest_test

import "time"

// processCPU is not measured here: BenchmarkIngest then leaves out the database's CPU.
func processCPU(pid int) time.Duration { return 0 }
