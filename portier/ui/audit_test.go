package ui

import "testing"

func TestCSVCellNoFormulas(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")", "+1": "'+1", "-2": "'-2", "@sum": "'@sum", "\tx": "'\tx",
		"alice": "alice", "": "", "stream/1": "stream/1",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}
