package webhook_test

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/portier/portier/portier/webhook"
)

// A receiver checks each delivery's signature over the body as received,
// then parses it; it answers 2xx once it has the event (a retry of an event
// it has handled carries the same Portier-Event-Id).
func ExampleVerify() {
	secret := "whsec_…" // the endpoint's secret, shown when it was created
	http.HandleFunc("/hooks/portier", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev webhook.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad JSON", http.StatusBadRequest)
			return
		}
		switch ev.Type {
		case webhook.StreamLive:
			// start something
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
