package httperr

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/portier/portier/models"
)

// Several field errors are answered together: field names the first, the
// message has every one.
func TestMapJoinedFieldErrors(t *testing.T) {
	err := errors.Join(models.NameError("name"), &models.SpecError{Field: "target", Message: "needs a host"})
	ae := Map(err)
	if ae.Status != http.StatusBadRequest || ae.Field != "name" || !strings.Contains(ae.Message, "name must be") ||
		!strings.Contains(ae.Message, "target needs a host") {
		t.Fatalf("Map = %+v", ae)
	}
	if ae := Map(&models.SpecError{Field: "format", Message: "must be mp4"}); ae.Message != "format must be mp4" {
		t.Errorf("one field error: %q", ae.Message)
	}
}
