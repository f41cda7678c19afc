// Package paging reads the paging parameters of list requests (?limit=,
// ?offset=) for the REST API and the web UI, within the bounds the store
// is asked for.
package paging

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/portier/portier/portier/httperr"
)

// Pagination limits of list endpoints.
const (
	DefaultLimit = 50
	MaxLimit     = 100
	// MaxOffset bounds ?offset= so that offset+limit can never
	// overflow an int (a 64-bit offset near MaxInt64 once panicked the
	// recordings list) and the database never sees an absurd OFFSET.
	MaxOffset = 1_000_000_000
)

// Page is the pagination of a list request.
type Page struct{ Limit, Offset int }

// Params reads ?limit (1-100, default 50) and ?offset (0-1e9): a value
// out of range or not a decimal integer is the client's mistake (400).
func Params(c *gin.Context) (Page, error) {
	p := Page{Limit: DefaultLimit}
	if v, ok := c.GetQuery("limit"); ok {
		n, err := parseBounded(v, 1, MaxLimit)
		if err != nil {
			return p, httperr.Invalid("limit", fmt.Sprintf("limit must be an integer between 1 and %d", MaxLimit))
		}
		p.Limit = n
	}
	if v, ok := c.GetQuery("offset"); ok {
		n, err := ParseOffset(v)
		if err != nil {
			return p, httperr.Invalid("offset", err.Error())
		}
		p.Offset = n
	}
	return p, nil
}

// ParseOffset parses a paging offset (see MaxOffset).
func ParseOffset(v string) (int, error) {
	n, err := parseBounded(v, 0, MaxOffset)
	if err != nil {
		return 0, fmt.Errorf("offset must be an integer between 0 and %d", MaxOffset)
	}
	return n, nil
}

// parseBounded parses a decimal integer in [lo, hi]; signs other than a
// leading '-' for negatives, spaces and overflow are errors.
func parseBounded(v string, lo, hi int) (int, error) {
	if v == "" || len(v) > 20 || v[0] == '+' {
		return 0, errors.New("not an integer")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < int64(lo) || n > int64(hi) {
		return 0, errors.New("out of range")
	}
	return int(n), nil
}
