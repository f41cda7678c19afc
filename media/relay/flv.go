package relay

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/portier/portier/internal/nodewire"
	"github.com/portier/portier/media/httpflv"
	"github.com/portier/portier/media/stream"
)

// buildFLV creates the HTTP-FLV handler on the relay's hub.
func (s *servers) buildFLV(r *Relay) error {
	h, err := httpflv.New(httpflv.Params{
		Hub: r.hub,
		AuthorizePlay: func(ctx context.Context, req httpflv.PlayRequest) error {
			if ok, reason := r.authorizePlay(ctx, req.App, req.Name, req.RawQuery, req.Addr); !ok {
				return fmt.Errorf("%w: %s", httpflv.ErrForbidden, reason)
			}
			return nil
		},
		IsInternal: func(path string, q url.Values) bool {
			return nodewire.IsInternalPlay(r.p.ClusterToken, path, q)
		},
		Reader: stream.ReaderParams{CoalesceFrames: r.p.PlayerWriteFrames},
		Logger: r.p.Logger,
	})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	s.flv = h
	return nil
}

func (r *Relay) flvHandler() http.Handler { return r.servers.flv }
