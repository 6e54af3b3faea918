package ingest

// ReadBody lets the benchmark's bare handler read bodies exactly as the real handler does,
// so that the comparison measures storing, not reading.
var ReadBody = readBody

// Queued is how many requests wait for a transaction.
func (c *Committer) Queued() int { return len(c.queue) }
