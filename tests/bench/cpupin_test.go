package bench

import (
	"os/exec"
	"reflect"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestParseCPUJiffies(t *testing.T) {
	stat := "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\ncpu1 10 0 0 30 0 0 0 0\nintr 5 1\n"
	got, err := parseCPUJiffies([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]cpuJiffies{0: {busy: 1 + 2 + 3 + 6 + 7 + 8, total: 36, irq: 6 + 7, steal: 8}, 1: {busy: 10, total: 40}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseCPUJiffies([]byte("cpu 1 2 3 4\n")); err == nil {
		t.Error("no per-cpu lines: no error")
	}
}

func TestKneeSchedule(t *testing.T) {
	for _, c := range []struct {
		max  int
		want []int
	}{
		{5000, []int{250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000}},
		{3000, []int{250, 500, 750, 1000, 1500, 2000, 2500, 3000}},
		{1200, []int{250, 500, 750, 1000, 1200}},
		{100, []int{100}},
	} {
		if got := kneeNs(c.max); !slices.Equal(got, c.want) {
			t.Errorf("kneeNs(%d) = %v, want %v", c.max, got, c.want)
		}
	}
	for _, c := range []struct{ held, failed, want int }{
		{1000, 1500, 1250}, {750, 1000, 850}, {3000, 4000, 3500}, {0, 250, 100}, {2500, 0, 0}, {1000, 1050, 0}, {1450, 1500, 0},
	} {
		if got := kneeRefine(c.held, c.failed); got != c.want {
			t.Errorf("kneeRefine(%d, %d) = %d, want %d", c.held, c.failed, got, c.want)
		}
	}
}

// TestPinTree pins a shell and its child (every thread of each) to one CPU
// and back.
func TestPinTree(t *testing.T) {
	cpus, err := AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) < 2 {
		t.Skipf("needs two CPUs, may use %v", cpus)
	}
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	var tree []int
	for time.Now().Before(deadline) {
		if tree, err = procTree(pid); err == nil && len(tree) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(tree) != 2 {
		t.Fatalf("process tree of the shell: %v (%v)", tree, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(tree[1], syscall.SIGKILL) }) // the sleep, before its shell
	one := cpus[1:2]
	pinned, err := PinTree(pid, one, nil)
	if err != nil || len(pinned) != 2 {
		t.Fatalf("PinTree: %v %v", pinned, err)
	}
	if off, err := ThreadsOffCPUs(pid, one); err != nil || off != 0 {
		t.Fatalf("after pinning to %v: %d threads off (%v)", one, off, err)
	}
	if off, _ := ThreadsOffCPUs(pid, cpus); off != 2 {
		t.Errorf("threads off %v: %d, want 2", cpus, off)
	}
	if _, err := PinTree(pid, cpus, map[int]bool{tree[1]: true}); err != nil {
		t.Fatal(err)
	}
	if off, _ := ThreadsOffCPUs(pid, cpus); off != 1 {
		t.Errorf("after restoring all but the skipped child: %d threads off, want 1", off)
	}
}

func TestKneeHeldAndFailed(t *testing.T) {
	r := kneeResult{Steps: []kneeStep{
		{N: 250, Held: true}, {N: 500, Held: true}, {N: 750}, {N: 750, Held: true},
		{N: 1000}, {N: 1000, Off: 1}, {N: 850}, {N: 850, Off: 2},
	}}
	held, failed := r.knee()
	if held.N != 750 || failed.N != 850 || failed.Off != 2 {
		t.Errorf("held %d, failed %d (run %d): want 750 and 850's second run", held.N, failed.N, failed.Off)
	}
}
