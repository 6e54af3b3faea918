// Command ingestload measures durable webhook ingest: it posts signed webhooks over
// loopback HTTP to a real linestep (SQLite, and PostgreSQL when a URL is given) and, in
// the same run, to a bare handler that only verifies the signature and answers 200. It
// reports events per second and latency percentiles for each.
//
//	go run ./cmd/ingestload -events 60000 -concurrency 64 \
//	    -postgres postgres://postgres@127.0.0.1:5432/test?sslmode=disable
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/linestep/linestep/internal/ingest"
	"github.com/linestep/linestep/internal/line"
	"github.com/linestep/linestep/internal/server"
)

const secret = "load-test-channel-secret"

func main() {
	events := flag.Int("events", 60000, "webhook requests per target (one event each)")
	perRequest := flag.Int("per-request", 1, "events per webhook request")
	conc := flag.Int("concurrency", 64, "concurrent senders (LINE delivers webhooks in parallel)")
	pgURL := flag.String("postgres", "", "also measure PostgreSQL at this URL (a fresh schema is used and dropped)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}

	fmt.Printf("ingestload: %d requests x %d event(s), %d concurrent senders, GOMAXPROCS=%d, %s\n\n",
		*events, *perRequest, *conc, runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("%-10s %12s %10s %10s %10s %10s %14s\n", "target", "events/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "cpu µs/event")

	bare := run("bare", bareHandler(), *events, *perRequest, *conc, nil)
	dir, _ := os.MkdirTemp("", "ingestload-")
	defer os.RemoveAll(dir)
	sqlite := measureServer("sqlite", filepath.Join(dir, "load.db"), *events, *perRequest, *conc)
	fmt.Printf("\nsqlite / bare = %.2f\n", sqlite/bare)
	if *pgURL != "" {
		dsn, drop := freshSchema(*pgURL)
		defer drop()
		pg := measureServer("postgres", dsn, *events, *perRequest, *conc)
		fmt.Printf("postgres / bare = %.2f\n", pg/bare)
	}
}

// bareHandler is the floor: what any webhook receiver must do (read the body with a
// limit, check the signature), with nothing stored.
func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, ingest.DefaultMaxBody))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if !line.VerifySignature([]byte(secret), body, r.Header.Get("x-line-signature")) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

func measureServer(name, dsn string, events, perRequest, conc int) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.New(ctx, server.Config{DB: dsn, Logger: slog.New(slog.DiscardHandler),
		LineAPIURL: "http://127.0.0.1:1", LineDataAPIURL: "http://127.0.0.1:1",
		Getenv: func(k string) string {
			if k == "LINESTEP_MASTER_KEY" {
				return "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
			}
			return ""
		}})
	check(err)
	defer srv.Close()
	ch, err := srv.Channels.Add(ctx, "load", secret, "token")
	check(err)
	rate := run(name, nil, events, perRequest, conc, func(ln net.Listener) (string, func()) {
		done := make(chan struct{})
		go func() { srv.Serve(ctx, ln); close(done) }()
		return ch.WebhookPath(), func() { cancel(); <-done }
	})
	var stored int
	check(srv.DB.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM webhook_events").Scan(&stored))
	if stored != events*perRequest {
		fmt.Fprintf(os.Stderr, "%s: %d events stored, want %d\n", name, stored, events*perRequest)
		os.Exit(1)
	}
	return rate
}

// run posts the webhooks and prints one result line; it returns events per second.
func run(name string, h http.Handler, requests, perRequest, conc int, start func(net.Listener) (string, func())) float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	path, stop := "/webhook", func() {}
	if start != nil {
		path, stop = start(ln)
	} else {
		hs := &http.Server{Handler: h}
		go hs.Serve(ln)
		stop = func() { hs.Close() }
	}
	defer stop()
	url := "http://" + ln.Addr().String() + path
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 30 * time.Second}
	bodies := make([][]byte, requests)
	for i := range bodies {
		bodies[i] = webhookBody(name, i, perRequest)
	}
	lat := make([]time.Duration, requests)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	began := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= requests {
					return
				}
				req, _ := http.NewRequest("POST", url, bytes.NewReader(bodies[i]))
				req.Header.Set("x-line-signature", sign(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				res, err := client.Do(req)
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	cpu := cpuTime() - cpu0
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d requests failed\n", name, n)
		os.Exit(1)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	rate := float64(requests*perRequest) / elapsed.Seconds()
	// CPU of this process (senders and server; not a PostgreSQL server) per event.
	cpuPer := float64(cpu.Microseconds()) / float64(requests*perRequest)
	fmt.Printf("%-10s %12.0f %10.2f %10.2f %10.2f %10.2f %14.1f\n", name, rate, pct(0.5), pct(0.9), pct(0.99), pct(1), cpuPer)
	return rate
}

// webhookBody is a realistic text-message webhook (about 600 bytes per event).
func webhookBody(run string, i, perRequest int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"destination":"U0123456789abcdef0123456789abcdef","events":[`)
	for j := range perRequest {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"message","message":{"type":"text","id":"4680%011d","quoteToken":"q3Plxr4AgKd%08d","text":"こんにちは、明日の予約を変更したいのですが空いていますか? Hello, can I change tomorrow's booking?"},"webhookEventId":"01LOAD%s%08d%03d","deliveryContext":{"isRedelivery":false},"timestamp":1700000000000,"source":{"type":"user","userId":"U%032x"},"replyToken":"b60d432864f44d079f6d8efe86cf404b","mode":"active"}`,
			i, i, run, i, j, i%5000)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// freshSchema returns a DSN on a new schema of base's database, and its cleanup.
func freshSchema(base string) (string, func()) {
	admin, err := sql.Open("pgx", base)
	check(err)
	schema := fmt.Sprintf("ingestload_%d", time.Now().UnixNano())
	_, err = admin.Exec("CREATE SCHEMA " + schema)
	check(err)
	sep := "?"
	if bytes.ContainsRune([]byte(base), '?') {
		sep = "&"
	}
	return base + sep + "search_path=" + schema, func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestload:", err)
		os.Exit(1)
	}
}
