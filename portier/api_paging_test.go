package portier

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portier/portier/portier/httperr"
)

// TestAPIPagingBadValues: every paged list answers a bad or huge limit or
// offset with 400 and a message naming the parameter, never a 500; big
// valid offsets give an empty page.
func TestAPIPagingBadValues(t *testing.T) {
	t.Parallel()
	rec := t.TempDir()
	forEachStoreWith(t, func(p *Params) { p.Live.Compile.RecordDir = rec }, func(t *testing.T, e *apiEnv) {
		s := e.mustDo("op1", "POST", "/streams", `{"name":"cam1"}`, 201)
		lists := []string{"/streams", "/streams/" + id(s) + "/recordings", "/tasks", "/audit", "/users"}
		bad := []struct{ q, field string }{
			{"offset=9223372036854775807", "offset"},
			{"offset=9223372036854775808", "offset"},
			{"offset=18446744073709551616", "offset"},
			{"offset=1000000001", "offset"},
			{"offset=-1", "offset"},
			{"offset=-9223372036854775808", "offset"},
			{"offset=abc", "offset"},
			{"offset=", "offset"},
			{"offset=1e3", "offset"},
			{"offset=+5", "offset"},
			{"offset=%205", "offset"},
			{"offset=0x10", "offset"},
			{"limit=0", "limit"},
			{"limit=101", "limit"},
			{"limit=-1", "limit"},
			{"limit=9223372036854775807", "limit"},
			{"limit=", "limit"},
		}
		for _, l := range lists {
			for _, b := range bad {
				code, body := e.do("admin", "GET", l+"?"+b.q, "")
				c, f := errCode(body)
				if code != 400 || c != httperr.CodeInvalid || f != b.field {
					t.Errorf("GET %s?%s: %d %v, want 400 invalid on %s", l, b.q, code, body, b.field)
				}
			}
			body := e.mustDo("admin", "GET", l+"?offset=1000000000&limit=100", "", 200)
			if items, _ := body["items"].([]any); len(items) != 0 || body["next_offset"] != nil {
				t.Errorf("GET %s at the largest offset: %v", l, body)
			}
		}
	})
}

// TestUIAuditBadOffset: the audit page refuses a bad offset with 400.
func TestUIAuditBadOffset(t *testing.T) {
	e := newUIEnv(t)
	c := e.login("admin")
	for _, q := range []string{"9223372036854775807", "-1", "x"} {
		res, doc := c.get("/admin/audit?offset="+url.QueryEscape(q), 0)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(doc.Text(), "offset must be") {
			t.Errorf("offset %q: %d", q, res.StatusCode)
		}
	}
	c.get("/admin/audit?offset=50", http.StatusOK)
}
