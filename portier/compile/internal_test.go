package compile

import (
	"net/url"
	"strings"
	"testing"

	"github.com/portier/portier/internal/nodewire"
)

// A task's relay input carries the proof the relay checks to treat it as
// the system's own player, and never the cluster token itself.
func TestRelayInputCarriesInternalProof(t *testing.T) {
	const tok = "cluster-secret-token"
	env := testEnv
	env.InternalSig = func(path, typ string) string { return nodewire.InternalPlaySig(tok, path, typ) }
	for _, cfg := range []TaskConfigInput{
		{Type: TypeRecord},
		{Type: TypeRestream, Target: "rtmp://a.example/live", Key: "k"},
		{Type: TypeHLS, Renditions: ladder},
	} {
		d, err := Compile(cfg, testStream, env)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(d.Args, " ")+d.Input, tok) {
			t.Fatalf("%s: the cluster token is in the command line", cfg.Type)
		}
		u, err := url.Parse(d.Input)
		if err != nil {
			t.Fatal(err)
		}
		if !nodewire.IsInternalPlay(tok, "live/show", u.Query()) {
			t.Fatalf("%s: input %q does not prove it is internal", cfg.Type, d.Input)
		}
		if nodewire.IsInternalPlay(tok, "live/other", u.Query()) {
			t.Fatalf("%s: the proof is valid for another stream", cfg.Type)
		}
	}
}
