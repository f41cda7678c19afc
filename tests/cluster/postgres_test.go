package cluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pgServer is the cluster's own Postgres: a throw-away database cluster
// (initdb in a temporary directory, trust authentication) listening on the
// bridge address, so that a chaos step can restart it. The machine's
// shared Postgres serves other tests and must not be restarted.
type pgServer struct {
	bin  string // /usr/lib/postgresql/N/bin
	dir  string // the temporary directory: data/, the log, the socket
	addr string // host:port on the bridge
}

// pgDirPrefix names the temporary directories, followed by the test
// process's PID in base 36 (as the namespaces), so sweepStale can stop a
// killed run's postmaster and remove its files.
const pgDirPrefix = prefix + "-pg-"

// requirePostgresBinaries returns the newest /usr/lib/postgresql/*/bin
// holding initdb and pg_ctl, or skips (fails under CI=true).
func requirePostgresBinaries(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
				return d
			}
		}
	}
	why := "no /usr/lib/postgresql/*/bin/initdb and pg_ctl: the cluster test runs its own Postgres (install the postgresql package)"
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// startPostgres makes and starts the cluster's Postgres on listenIP; the
// test's cleanup stops it and removes its files.
func startPostgres(t *testing.T, listenIP string) *pgServer {
	t.Helper()
	bin := requirePostgresBinaries(t)
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the cluster's Postgres runs as the postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	dir, err := os.MkdirTemp("", pgDirPrefix+strconv.FormatInt(int64(os.Getpid()), 36)+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	pg := &pgServer{bin: bin, dir: dir, addr: net.JoinHostPort(listenIP, strconv.Itoa(port))}
	t.Cleanup(pg.remove)
	if out, err := pg.run("initdb", "-D", pg.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("listen_addresses = '%s'\nport = %d\nunix_socket_directories = '%s'\nmax_connections = 100\nshared_buffers = 16MB\n",
		listenIP, port, dir)
	if err := os.WriteFile(filepath.Join(pg.data(), "postgresql.auto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// Trust on the bridge's /24 only (it is the test's own network).
	subnet := listenIP[:strings.LastIndexByte(listenIP, '.')] + ".0/24"
	hba := "local all all trust\nhost all all " + subnet + " trust\n"
	if err := os.WriteFile(filepath.Join(pg.data(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"postgresql.auto.conf", "pg_hba.conf"} {
		os.Chown(filepath.Join(pg.data(), f), uid, gid)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	return pg
}

func (pg *pgServer) data() string { return filepath.Join(pg.dir, "data") }

// DSN is the database URL of the cluster's Postgres.
func (pg *pgServer) DSN() string {
	return "postgres://postgres@" + pg.addr + "/postgres?sslmode=disable"
}

// run runs a Postgres program as the postgres user.
func (pg *pgServer) run(prog string, args ...string) (string, error) {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(pg.bin, prog)}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Start starts the postmaster and waits until it accepts connections.
func (pg *pgServer) Start() error {
	out, err := pg.run("pg_ctl", "-D", pg.data(), "-l", filepath.Join(pg.dir, "log"), "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, tail(string(log), 2000))
	}
	return nil
}

// Crash stops Postgres as a crash would (pg_ctl stop -m immediate: every
// server process quits at once, without a checkpoint; the next start runs
// crash recovery from the WAL).
func (pg *pgServer) Crash() error {
	if out, err := pg.run("pg_ctl", "-D", pg.data(), "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop -m immediate: %v: %s", err, out)
	}
	return nil
}

// remove stops the postmaster (if it runs) and removes the files.
func (pg *pgServer) remove() {
	pg.run("pg_ctl", "-D", pg.data(), "-m", "immediate", "-w", "-t", "10", "stop")
	os.RemoveAll(pg.dir)
}

// sweepStalePostgres stops and removes what a killed earlier run's
// Postgres left: directories whose creator PID is gone.
func sweepStalePostgres(alive func(id string) bool) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), pgDirPrefix+"*"))
	for _, d := range dirs {
		id, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), pgDirPrefix), "-")
		if !ok || alive(id) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if err == nil && pid > 1 && strings.Contains(string(cmdline), d) { // still that postmaster
				// SIGQUIT: Postgres's immediate shutdown.
				syscall.Kill(pid, syscall.SIGQUIT)
				for range 50 {
					if syscall.Kill(pid, 0) != nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
		os.RemoveAll(d)
	}
}
