package rtp

// Flow is a labelled Snapshot: one RTP flow as the relay's API and metrics
// show it.
type Flow struct {
	// Path is the stream path ("app/name") the flow belongs to.
	Path string `json:"path"`
	// Track names the flow within the stream (the media index in the SDP,
	// e.g. "0").
	Track string `json:"track"`
	// Codec is the format's codec name ("H264", "MPEG-4 Audio", ...).
	Codec string `json:"codec"`
	// Direction is "in" for flows received from a publisher.
	Direction string `json:"direction"`
	// Transport is "udp" or "tcp" (interleaved in the RTSP connection).
	Transport  string `json:"transport"`
	RemoteAddr string `json:"remote_addr,omitempty"`
	Snapshot
}
