package rtmp

import "encoding/binary"

// AppendChunks appends payload encoded as one message on chunk stream csid:
// a type-0 chunk followed by type-3 continuation chunks of at most chunkSize
// bytes each. Timestamps of 0xFFFFFF and above use the extended timestamp
// field, which is repeated after every continuation chunk header as the
// specification requires. Because every message starts with a full header,
// the bytes are the same for every receiver that uses the same chunk size,
// so they can be encoded once and shared between players.
//
// A payload longer than 0xFFFFFF bytes cannot be represented: dst is returned
// unchanged (WriteMessage reports ErrMessageTooLarge instead). A chunkSize of
// 0 means 128, the protocol default.
func AppendChunks(dst []byte, csid, streamID uint32, typ uint8, ts uint32, payload []byte, chunkSize uint32) []byte {
	if len(payload) > 0xffffff {
		return dst
	}
	if chunkSize == 0 {
		chunkSize = 128
	}
	extended := ts >= 0xffffff
	dst = appendBasicHeader(dst, 0, csid)
	if extended {
		dst = append(dst, 0xff, 0xff, 0xff)
	} else {
		dst = append(dst, byte(ts>>16), byte(ts>>8), byte(ts))
	}
	n := len(payload)
	dst = append(dst, byte(n>>16), byte(n>>8), byte(n), typ)
	dst = binary.LittleEndian.AppendUint32(dst, streamID)
	if extended {
		dst = binary.BigEndian.AppendUint32(dst, ts)
	}
	for first := true; first || len(payload) > 0; first = false {
		if !first {
			dst = appendBasicHeader(dst, 3, csid)
			if extended {
				dst = binary.BigEndian.AppendUint32(dst, ts)
			}
		}
		k := min(uint32(len(payload)), chunkSize)
		dst = append(dst, payload[:k]...)
		payload = payload[k:]
	}
	return dst
}

// ChunkedSize returns the number of bytes AppendChunks produces, so callers
// can size buffers exactly.
func ChunkedSize(csid uint32, ts uint32, payloadLen int, chunkSize uint32) int {
	if chunkSize == 0 {
		chunkSize = 128
	}
	bh := basicHeaderLen(csid)
	ext := 0
	if ts >= 0xffffff {
		ext = 4
	}
	chunks := 1
	if payloadLen > 0 {
		chunks = (payloadLen + int(chunkSize) - 1) / int(chunkSize)
	}
	return bh + 11 + ext + payloadLen + (chunks-1)*(bh+ext)
}

func basicHeaderLen(csid uint32) int {
	switch {
	case csid < 64:
		return 1
	case csid < 320:
		return 2
	default:
		return 3
	}
}

func appendBasicHeader(dst []byte, format byte, csid uint32) []byte {
	switch {
	case csid < 64:
		return append(dst, format<<6|byte(csid))
	case csid < 320:
		return append(dst, format<<6, byte(csid-64))
	default:
		c := csid - 64
		return append(dst, format<<6|1, byte(c), byte(c>>8))
	}
}

// Control message builders (all on chunk stream 2, message stream 0).

func appendControl(dst []byte, typ uint8, body []byte) []byte {
	return AppendChunks(dst, CSIDControl, 0, typ, 0, body, 128)
}

func appendUint32Control(dst []byte, typ uint8, v uint32) []byte {
	return appendControl(dst, typ, binary.BigEndian.AppendUint32(nil, v))
}

func appendSetPeerBandwidth(dst []byte, size uint32, limit byte) []byte {
	return appendControl(dst, TypeSetPeerBandwidth, append(binary.BigEndian.AppendUint32(nil, size), limit))
}

func appendUserControl(dst []byte, event uint16, data ...uint32) []byte {
	body := binary.BigEndian.AppendUint16(nil, event)
	for _, d := range data {
		body = binary.BigEndian.AppendUint32(body, d)
	}
	return appendControl(dst, TypeUserControl, body)
}
