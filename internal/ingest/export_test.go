package ingest

// ReadBody lets the benchmark's bare handler read bodies exactly as the real handler does,
// so that the comparison measures storing, not reading.
var ReadBody = readBody
