package dirlock

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestLockHeldByOtherProcess takes the lock in a child process (the real
// case: two processes on one directory) and checks the second one's error.
func TestLockHeldByOtherProcess(t *testing.T) {
	if os.Getenv("DIRLOCK_CHILD") != "" {
		release, err := Lock(os.Getenv("DIRLOCK_CHILD"), "test")
		if err != nil {
			os.Exit(3)
		}
		defer release()
		os.Stdout.WriteString("locked\n")
		var b [1]byte
		os.Stdin.Read(b[:]) // hold until the parent closes stdin
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLockHeldByOtherProcess$")
	cmd.Env = append(os.Environ(), "DIRLOCK_CHILD="+dir)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "locked") {
		t.Fatalf("child did not lock: %q", buf[:n])
	}
	_, err := Lock(dir, "concierge")
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("second lock: %v, want ErrHeld", err)
	}
	for _, want := range []string{"process " + strconv.Itoa(cmd.Process.Pid), "another concierge", "--data-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	stdin.Close()
	cmd.Wait()
	release, err := Lock(dir, "concierge")
	if err != nil {
		t.Fatalf("lock after the holder exited: %v", err)
	}
	release()
	if st, err := os.Stat(dir + "/" + FileName); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", st, err)
	}
}
