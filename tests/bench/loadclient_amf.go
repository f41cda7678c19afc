package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// Minimal AMF0 for the load client's commands: it encodes numbers, booleans,
// strings, null and objects, and decodes every AMF0 type a server sends in
// command replies (AMF3 is refused).

const maxAMFDepth = 16

// amfEncode encodes the values in order: float64, bool, string, nil (null)
// and map[string]any (object, keys sorted).
func amfEncode(vals ...any) []byte {
	var b []byte
	for _, v := range vals {
		b = amfAppend(b, v)
	}
	return b
}

func amfAppend(b []byte, v any) []byte {
	switch v := v.(type) {
	case float64:
		b = append(b, 0x00)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
	case bool:
		if v {
			return append(b, 0x01, 1)
		}
		return append(b, 0x01, 0)
	case string:
		if len(v) > math.MaxUint16 {
			b = append(b, 0x0C)
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			return append(b, v...)
		}
		b = append(b, 0x02)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		return append(b, v...)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, 0x03)
		for _, k := range keys {
			b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
			b = append(b, k...)
			b = amfAppend(b, v[k])
		}
		return append(b, 0, 0, 0x09)
	default: // nil and anything else: null
		return append(b, 0x05)
	}
}

var errAMFShort = errors.New("amf0: truncated")

// amfDecodeAll decodes consecutive values until the payload ends.
func amfDecodeAll(b []byte) ([]any, error) {
	var out []any
	for len(b) > 0 {
		v, rest, err := amfDecode(b, 0)
		if err != nil {
			return out, err
		}
		out = append(out, v)
		b = rest
	}
	if len(out) == 0 {
		return nil, errors.New("amf0: empty command")
	}
	return out, nil
}

func amfDecode(b []byte, depth int) (any, []byte, error) {
	if depth > maxAMFDepth {
		return nil, nil, errors.New("amf0: nested too deep")
	}
	if len(b) < 1 {
		return nil, nil, errAMFShort
	}
	marker, b := b[0], b[1:]
	switch marker {
	case 0x00: // number
		if len(b) < 8 {
			return nil, nil, errAMFShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case 0x01: // boolean
		if len(b) < 1 {
			return nil, nil, errAMFShort
		}
		return b[0] != 0, b[1:], nil
	case 0x02: // string
		return amfString16(b)
	case 0x0C, 0x0F: // long string, XML document
		if len(b) < 4 {
			return nil, nil, errAMFShort
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, nil, errAMFShort
		}
		return string(b[4 : 4+n]), b[4+n:], nil
	case 0x03: // object
		return amfProps(b, depth)
	case 0x10: // typed object: class name, then properties
		_, rest, err := amfString16(b)
		if err != nil {
			return nil, nil, err
		}
		return amfProps(rest, depth)
	case 0x08: // ECMA array: count (advisory), then properties
		if len(b) < 4 {
			return nil, nil, errAMFShort
		}
		return amfProps(b[4:], depth)
	case 0x0A: // strict array
		if len(b) < 4 {
			return nil, nil, errAMFShort
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) { // every value takes at least one byte
			return nil, nil, errAMFShort
		}
		arr := make([]any, 0, n)
		for range n {
			v, rest, err := amfDecode(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			arr, b = append(arr, v), rest
		}
		return arr, b, nil
	case 0x05, 0x06, 0x0D: // null, undefined, unsupported
		return nil, b, nil
	case 0x07: // reference
		if len(b) < 2 {
			return nil, nil, errAMFShort
		}
		return nil, b[2:], nil
	case 0x0B: // date: ms + time zone
		if len(b) < 10 {
			return nil, nil, errAMFShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[10:], nil
	default:
		return nil, nil, fmt.Errorf("amf0: unsupported marker 0x%02x", marker)
	}
}

func amfString16(b []byte) (any, []byte, error) {
	if len(b) < 2 {
		return nil, nil, errAMFShort
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > len(b)-2 {
		return nil, nil, errAMFShort
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

func amfProps(b []byte, depth int) (any, []byte, error) {
	obj := map[string]any{}
	for {
		if len(b) < 3 {
			return nil, nil, errAMFShort
		}
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 && b[2] == 0x09 {
			return obj, b[3:], nil
		}
		if n > len(b)-2 {
			return nil, nil, errAMFShort
		}
		key := string(b[2 : 2+n])
		v, rest, err := amfDecode(b[2+n:], depth+1)
		if err != nil {
			return nil, nil, err
		}
		obj[key] = v
		b = rest
	}
}
