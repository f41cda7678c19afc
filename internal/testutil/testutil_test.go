package testutil

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	var n atomic.Int32
	Eventually(t, time.Second, "three polls", func() bool { return n.Add(1) >= 3 })
	EventuallyErr(t, time.Second, "three polls", func() (bool, error) { return n.Add(1) >= 6, errors.New("not yet") })
}
