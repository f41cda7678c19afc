package nodeapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/portier/portier/models"
	"github.com/portier/portier/portier/live"
)

// Live statistics of streams: relays report every stream they have with
// each heartbeat (nodewire.StreamReport); live.State.StoreStreamStats keeps
// them (see portier/live/stats.go for how viewers are counted).

// maxStreamReports bounds the streams of one heartbeat.
const maxStreamReports = 100_000

// streamReportReq is one element of a heartbeat's "streams".
type streamReportReq struct {
	Path      string `json:"path"`
	Publisher bool   `json:"publisher"`
	models.StreamCodec
	BitrateIn int64 `json:"bitrate_in"`
	Players   int   `json:"players"`
	// The publisher (nodewire.StreamReport; older relays leave it out).
	PublisherAddr     string `json:"publisher_addr"`
	PublisherProtocol string `json:"publisher_protocol"`
	Encoder           string `json:"encoder"`
}

// parseStreamReports decodes and checks a heartbeat's "streams". It
// returns nil (and no error) when the field is absent or null. A body that
// is not a list of objects is refused (the field and a message say what is
// wrong); single entries that make no sense (a path that is not app/name,
// negative figures) are left out, like invalid "published" entries, so
// that one odd stream never stops a relay's heartbeats (which would make
// it look dead).
func parseStreamReports(raw json.RawMessage) (out []models.StreamStatReport, field, msg string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", ""
	}
	var list []streamReportReq
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, "streams", "streams must be a list of {\"path\":\"app/name\",\"publisher\":bool,\"players\":N,...} objects"
	}
	if len(list) > maxStreamReports {
		return nil, "streams", fmt.Sprintf("at most %d streams", maxStreamReports)
	}
	out = make([]models.StreamStatReport, 0, len(list))
	for _, r := range list {
		app, name, ok := strings.Cut(r.Path, "/")
		if !ok || live.CheckAppName(app, name) != nil ||
			r.Players < 0 || r.BitrateIn < 0 || r.Width < 0 || r.Height < 0 || r.SampleRate < 0 || r.Channels < 0 ||
			r.FPS < 0 || r.FPS > 1000 || len(r.VideoCodec) > 32 || len(r.AudioCodec) > 32 ||
			r.GOPMillis < 0 || r.GOPFrames < 0 {
			continue
		}
		codec := r.StreamCodec
		codec.FPS = math.Round(codec.FPS*100) / 100
		sr := models.StreamStatReport{App: app, Name: name, Publisher: r.Publisher, Players: r.Players,
			BitrateIn: r.BitrateIn, Codec: codec}
		if r.Publisher {
			// Relays bound these (the encoder name comes from the
			// publisher); a longer or non-UTF-8 one is left out.
			sr.PublishedBy = models.StreamPublisher{Addr: reportText(r.PublisherAddr, 64),
				Protocol: reportText(r.PublisherProtocol, 32), Encoder: reportText(r.Encoder, 128)}
		}
		out = append(out, sr)
	}
	return out, "", ""
}

// reportText is s if it is valid UTF-8 without control characters and at
// most limit bytes long, else "".
func reportText(s string, limit int) string {
	if len(s) > limit || !utf8.ValidString(s) {
		return ""
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return s
}
