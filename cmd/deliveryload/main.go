// Command deliveryload measures a broadcast of identical content to many friends, the
// way it runs in production: linestep serve and the LINE emulator (enforcing LINE's
// limits: multicast 200 calls/s of up to 500 recipients) each in a process of its own,
// so that serve's memory is its own. It seeds the friends by bulk insert, has serve
// create the broadcast, and reports when LINE had accepted the last recipient, when
// linestep had recorded every delivery as sent, and serve's peak resident memory
// (VmHWM from /proc). It fails if any friend did not get the message exactly once.
//
//	go run ./cmd/deliveryload -friends 1000000
//	go run ./cmd/deliveryload -friends 1000000 \
//	    -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//
// The tool runs itself three times over: as the driver, as the emulator (-role
// emulator) and as linestep serve (-role serve).
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/linestep/linestep/internal/broadcast"
	"github.com/linestep/linestep/internal/channel"
	"github.com/linestep/linestep/internal/clock"
	"github.com/linestep/linestep/internal/delivery"
	"github.com/linestep/linestep/internal/emulator"
	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/server"
	"github.com/linestep/linestep/internal/store"
)

const (
	masterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	secret    = "deliveryload-secret"
	token     = "deliveryload-token"
	text      = "年末セールのお知らせ"
)

func getenv(k string) string {
	if k == "LINESTEP_MASTER_KEY" {
		return masterKey
	}
	return os.Getenv(k)
}

func main() {
	role := flag.String("role", "", "internal: emulator | serve")
	friends := flag.Int("friends", 1_000_000, "friends to broadcast to")
	pgURL := flag.String("postgres", "", "run on PostgreSQL at this URL (a fresh schema, dropped after) instead of SQLite")
	dsn := flag.String("db", "", "internal: the database of serve")
	apiURL := flag.String("api", "", "internal: the emulator's URL")
	chID := flag.String("channel", "", "internal: the channel ID")
	usersFile := flag.String("users", "", "internal: where the emulator writes its followers' IDs")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of serve (the whole run) to this file")
	flag.Parse()
	var err error
	switch *role {
	case "emulator":
		err = runEmulator(*chID, *friends, *usersFile)
	case "serve":
		err = runServe(*dsn, *apiURL, *cpuProfile)
	case "":
		err = drive(*friends, *pgURL, *cpuProfile)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "deliveryload:", err)
		os.Exit(1)
	}
}

// runEmulator serves the emulator with LINE's default limits, its followers' IDs
// written to usersFile, and prints its URL when ready.
func runEmulator(chID string, n int, usersFile string) error {
	emu := emulator.New(emulator.Config{Logger: slog.New(slog.DiscardHandler)})
	if err := emu.AddChannel(emulator.Channel{ID: chID, Secret: secret, AccessToken: token, BotUserID: emulator.NewUserID()}); err != nil {
		return err
	}
	ids, err := emu.AddFollowers(chID, n)
	if err != nil {
		return err
	}
	if err := os.WriteFile(usersFile, []byte(strings.Join(ids, "\n")), 0o600); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("http://%s\n", ln.Addr())
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }() // the driver is gone
	return http.Serve(ln, emu.Handler())
}

// runServe runs linestep serve; a line "broadcast" on stdin creates the broadcast (in
// this process, so that its workers are woken at once, as when staff create one).
func runServe(dsn, apiURL, cpuProfile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	srv, err := server.New(ctx, server.Config{Addr: "127.0.0.1:0", DB: dsn, LineAPIURL: apiURL, LineDataAPIURL: apiURL,
		Getenv: getenv, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer srv.Close()
	var chID string
	if err := srv.DB.QueryRowContext(ctx, "SELECT id FROM channels").Scan(&chID); err != nil {
		return err
	}
	go func() {
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			if in.Text() != "broadcast" {
				continue
			}
			start := time.Now()
			err := srv.DB.WriteTx(ctx, func(tx *store.Tx) error {
				_, err := srv.Broadcasts.Create(ctx, tx, broadcast.Broadcast{ChannelID: chID, Name: "deliveryload",
					Template: message.Template{Messages: []message.Message{{Type: "text", Text: text}}}})
				return err
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, "serve: create broadcast:", err)
				os.Exit(2)
			}
			fmt.Printf("created %d\n", start.UnixNano())
		}
		stop() // stdin closed: the driver is gone
	}()
	fmt.Println("ready")
	return srv.Run(ctx)
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func start(args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}, nil
}

func (c *child) line() (string, error) {
	if !c.out.Scan() {
		return "", fmt.Errorf("child %d ended: %v", c.cmd.Process.Pid, c.out.Err())
	}
	return c.out.Text(), nil
}

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// memKB reads a field (VmRSS, VmHWM) of a process's /proc status, in kB.
func memKB(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

func drive(n int, pgURL, cpuProfile string) error {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	tmp, err := os.MkdirTemp("", "deliveryload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dsn, target := filepath.Join(tmp, "load.db"), "SQLite"
	if pgURL != "" {
		var drop func()
		if dsn, drop, err = freshSchema(pgURL); err != nil {
			return err
		}
		defer drop()
		target = "PostgreSQL"
	}
	fmt.Printf("deliveryload: %d friends, %s, %d CPUs, %s\n", n, target, runtime.NumCPU(), runtime.Version())

	db, keys, err := server.Open(ctx, dsn, getenv, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	ch, err := channel.NewService(db, keys, clock.Real).Add(ctx, "deliveryload", secret, token)
	if err != nil {
		return err
	}

	t := time.Now()
	usersFile := filepath.Join(tmp, "users.txt")
	emu, err := start("-role", "emulator", "-channel", ch.ID, "-friends", strconv.Itoa(n), "-users", usersFile)
	if err != nil {
		return err
	}
	defer emu.stop()
	apiURL, err := emu.line()
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(usersFile)
	if err != nil {
		return err
	}
	users := strings.Split(string(raw), "\n")
	fmt.Printf("emulator ready with %d followers in %.1f s\n", len(users), time.Since(t).Seconds())

	t = time.Now()
	if err := seed(ctx, db, ch.ID, users); err != nil {
		return err
	}
	fmt.Printf("seeded %d friends in %.1f s\n", len(users), time.Since(t).Seconds())

	args := []string{"-role", "serve", "-db", dsn, "-api", apiURL}
	if cpuProfile != "" {
		args = append(args, "-cpuprofile", cpuProfile)
	}
	srv, err := start(args...)
	if err != nil {
		return err
	}
	defer srv.stop()
	if l, err := srv.line(); err != nil || l != "ready" {
		return fmt.Errorf("serve did not start: %q %v", l, err)
	}
	pid := srv.cmd.Process.Pid
	idleRSS := memKB(pid, "VmRSS")

	base, err := emuDeliveries(apiURL)
	if err != nil {
		return err
	}
	fmt.Fprintln(srv.stdin, "broadcast")
	l, err := srv.line()
	if err != nil {
		return err
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(l, "created "), 10, 64)
	if err != nil {
		return fmt.Errorf("serve: %q", l)
	}
	created := time.Unix(0, ns)

	var accepted, recorded time.Time
	peakRSS := 0
	deadline := time.Now().Add(10 * time.Minute)
	for accepted.IsZero() {
		if time.Now().After(deadline) {
			return errors.New("LINE had not accepted every recipient after 10 minutes")
		}
		peakRSS = max(peakRSS, memKB(pid, "VmRSS"))
		got, err := emuDeliveries(apiURL)
		if err != nil {
			return err
		}
		if got-base >= n {
			accepted = time.Now()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Recorded: the batches say it cheaply; the deliveries are counted once after.
	for recorded.IsZero() {
		if time.Now().After(deadline) {
			return errors.New("linestep had not recorded every delivery after 10 minutes")
		}
		peakRSS = max(peakRSS, memKB(pid, "VmRSS"))
		var sent int
		if err := db.QueryRowContext(ctx, "SELECT COALESCE(SUM(size), 0) FROM batches WHERE state = 'sent'").Scan(&sent); err != nil {
			return err
		}
		if sent >= n {
			recorded = time.Now()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	hwm := memKB(pid, "VmHWM")
	var sentRows, other int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE st = 'sent'), COUNT(*) FILTER (WHERE st <> 'sent')
		FROM (SELECT `+delivery.StateSQL("d", "b")+` AS st FROM deliveries d LEFT JOIN batches b ON b.id = d.batch_id) x`).
		Scan(&sentRows, &other); err != nil {
		return err
	}
	dups, err := emuDuplicates(apiURL, ch.ID)
	if err != nil {
		return err
	}
	el := accepted.Sub(created)
	fmt.Printf("\n%-34s %s\n", "target", target)
	fmt.Printf("%-34s %d\n", "friends", n)
	fmt.Printf("%-34s %.3f s\n", "LINE accepted every recipient", el.Seconds())
	fmt.Printf("%-34s %.0f/s (%.3f of LINE's 100,000/s)\n", "rate", float64(n)/el.Seconds(), float64(n)/el.Seconds()/100_000)
	fmt.Printf("%-34s %.3f s\n", "every delivery recorded sent", recorded.Sub(created).Seconds())
	fmt.Printf("%-34s %.1f MB (idle before: %.1f MB)\n", "serve peak RSS (VmHWM)", float64(hwm)/1024, float64(idleRSS)/1024)
	fmt.Printf("%-34s %.1f MB\n", "serve peak RSS sampled", float64(peakRSS)/1024)
	fmt.Printf("%-34s %d sent, %d other, %d duplicates at LINE\n", "deliveries", sentRows, other, dups)
	if sentRows != n || other != 0 || dups != 0 {
		return fmt.Errorf("not exactly once: %d sent of %d, %d in another state, %d duplicates", sentRows, n, other, dups)
	}
	return nil
}

func emuDeliveries(apiURL string) (int, error) {
	res, err := http.Get(apiURL + "/_emulator/stats")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var st emulator.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return 0, err
	}
	return st.Deliveries, nil
}

func emuDuplicates(apiURL, chID string) (int, error) {
	res, err := http.Get(apiURL + "/_emulator/channels/" + chID + "/duplicates")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var d struct{ Duplicates []json.RawMessage }
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil {
		return 0, err
	}
	return len(d.Duplicates), nil
}

// seed inserts the friends in large transactions: on PostgreSQL each column as one
// array per 50,000 friends, on SQLite 500 rows a statement.
func seed(ctx context.Context, db *store.DB, chID string, users []string) error {
	const per = 50_000
	for start := 0; start < len(users); start += per {
		chunk := users[start:min(start+per, len(users))]
		err := db.WriteTx(ctx, func(tx *store.Tx) error {
			if tx.Dialect() == store.Postgres {
				names := make([]string, len(chunk))
				for i := range chunk {
					names[i] = fmt.Sprintf("友だち%d", start+i)
				}
				_, err := tx.ExecContext(ctx, `INSERT INTO friends (channel_id, line_user_id, display_name, status, status_at, created_at, updated_at)
					SELECT ?, u, n, 'following', 0, 0, 0 FROM unnest(?::text[], ?::text[]) AS x(u, n)`, chID, chunk, names)
				return err
			}
			for s := 0; s < len(chunk); s += 500 {
				part := chunk[s:min(s+500, len(chunk))]
				args := make([]any, 0, 2*len(part)+1)
				args = append(args, chID)
				for i, u := range part {
					args = append(args, u, fmt.Sprintf("友だち%d", start+s+i))
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO friends (channel_id, line_user_id, display_name, status, status_at, created_at, updated_at)
					SELECT ?, column1, column2, 'following', 0, 0, 0 FROM (VALUES `+store.Placeholders(len(part), 2)+`)`, args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	// A real server's autovacuum analyses a table that grew this much within a minute;
	// the test cluster may run without it, and without statistics PostgreSQL plans each
	// page of friends as a scan and sort of all the friends past the cursor (300,000
	// friends took 32-37 s instead of a few).
	if db.Dialect() == store.Postgres {
		if _, err := db.ExecContext(ctx, "ANALYZE friends"); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}

// freshSchema returns a DSN on a new schema of base's database, and its cleanup.
func freshSchema(base string) (string, func(), error) {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("deliveryload_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		return "", nil, err
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema, func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	}, nil
}
