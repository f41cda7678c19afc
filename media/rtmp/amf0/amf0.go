// Package amf0 encodes and decodes Action Message Format 0 values, the
// serialisation used by RTMP commands and FLV script data.
//
// Values map to Go types as follows: number ↔ float64, boolean ↔ bool,
// string and long string ↔ string, object ↔ Object, ECMA array ↔ ECMAArray,
// strict array ↔ []any, date ↔ time.Time, null ↔ nil, undefined ↔ Undefined.
// Decoding is bounded: nesting depth is limited and no allocation is made
// from a length field before the bytes it announces have been seen.
package amf0

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Type markers.
const (
	markerNumber      = 0x00
	markerBoolean     = 0x01
	markerString      = 0x02
	markerObject      = 0x03
	markerMovieClip   = 0x04
	markerNull        = 0x05
	markerUndefined   = 0x06
	markerReference   = 0x07
	markerECMAArray   = 0x08
	markerObjectEnd   = 0x09
	markerStrictArray = 0x0a
	markerDate        = 0x0b
	markerLongString  = 0x0c
	markerUnsupported = 0x0d
	markerXMLDocument = 0x0f
	markerTypedObject = 0x10
	markerAVMPlus     = 0x11
)

// MaxDepth is the deepest nesting of objects and arrays Decode accepts.
const MaxDepth = 32

// Object is an AMF0 anonymous object.
type Object map[string]any

// ECMAArray is an AMF0 associative array (used by onMetaData).
type ECMAArray map[string]any

// Undefined is the AMF0 undefined value.
type Undefined struct{}

// Errors returned by Decode.
var (
	ErrShort       = errors.New("amf0: truncated value")
	ErrTooDeep     = errors.New("amf0: nesting too deep")
	ErrUnsupported = errors.New("amf0: unsupported type")
)

// Decode decodes one value from b and returns it with the number of bytes used.
func Decode(b []byte) (any, int, error) {
	d := decoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, 0, err
	}
	return v, d.pos, nil
}

// DecodeAll decodes consecutive values until b is exhausted.
func DecodeAll(b []byte) ([]any, error) {
	d := decoder{b: b}
	var out []any
	for d.pos < len(d.b) {
		v, err := d.value(0)
		if err != nil {
			return out, fmt.Errorf("value %d: %w", len(out), err)
		}
		out = append(out, v)
	}
	return out, nil
}

type decoder struct {
	b   []byte
	pos int
}

func (d *decoder) need(n int) error {
	if n < 0 || len(d.b)-d.pos < n {
		return ErrShort
	}
	return nil
}

func (d *decoder) u8() (byte, error) {
	if err := d.need(1); err != nil {
		return 0, err
	}
	v := d.b[d.pos]
	d.pos++
	return v, nil
}

func (d *decoder) u16() (int, error) {
	if err := d.need(2); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint16(d.b[d.pos:])
	d.pos += 2
	return int(v), nil
}

func (d *decoder) u32() (uint32, error) {
	if err := d.need(4); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint32(d.b[d.pos:])
	d.pos += 4
	return v, nil
}

func (d *decoder) str(n int) (string, error) {
	if err := d.need(n); err != nil {
		return "", err
	}
	s := string(d.b[d.pos : d.pos+n])
	d.pos += n
	return s, nil
}

func (d *decoder) shortString() (string, error) {
	n, err := d.u16()
	if err != nil {
		return "", err
	}
	return d.str(n)
}

func (d *decoder) longString() (string, error) {
	n, err := d.u32()
	if err != nil {
		return "", err
	}
	if uint64(n) > uint64(len(d.b)-d.pos) {
		return "", ErrShort
	}
	return d.str(int(n))
}

func (d *decoder) number() (float64, error) {
	if err := d.need(8); err != nil {
		return 0, err
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.pos:]))
	d.pos += 8
	return v, nil
}

func (d *decoder) value(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, ErrTooDeep
	}
	m, err := d.u8()
	if err != nil {
		return nil, err
	}
	switch m {
	case markerNumber:
		return d.number()
	case markerBoolean:
		b, err := d.u8()
		return b != 0, err
	case markerString:
		return d.shortString()
	case markerLongString, markerXMLDocument:
		return d.longString()
	case markerObject:
		props, err := d.properties(depth)
		return Object(props), err
	case markerTypedObject:
		if _, err := d.shortString(); err != nil { // class name
			return nil, err
		}
		props, err := d.properties(depth)
		return Object(props), err
	case markerECMAArray:
		if _, err := d.u32(); err != nil { // advisory count; the end marker is authoritative
			return nil, err
		}
		props, err := d.properties(depth)
		return ECMAArray(props), err
	case markerStrictArray:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		// Every element takes at least one byte: reject counts the input cannot hold.
		if uint64(n) > uint64(len(d.b)-d.pos) {
			return nil, ErrShort
		}
		arr := make([]any, 0, min(int(n), 64))
		for i := uint32(0); i < n; i++ {
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case markerDate:
		ms, err := d.number()
		if err != nil {
			return nil, err
		}
		if _, err := d.u16(); err != nil { // time zone, reserved
			return nil, err
		}
		if math.IsNaN(ms) || math.IsInf(ms, 0) || math.Abs(ms) > 8.64e15 {
			return time.Time{}, nil
		}
		return time.UnixMilli(int64(ms)).UTC(), nil
	case markerNull:
		return nil, nil
	case markerUndefined, markerUnsupported:
		return Undefined{}, nil
	case markerReference, markerMovieClip, markerAVMPlus:
		return nil, fmt.Errorf("%w: marker 0x%02x", ErrUnsupported, m)
	default:
		return nil, fmt.Errorf("%w: marker 0x%02x", ErrUnsupported, m)
	}
}

// properties reads name/value pairs up to the object-end marker.
func (d *decoder) properties(depth int) (map[string]any, error) {
	props := map[string]any{}
	for {
		name, err := d.shortString()
		if err != nil {
			return nil, err
		}
		if name == "" {
			if err := d.need(1); err != nil {
				return nil, err
			}
			if d.b[d.pos] == markerObjectEnd {
				d.pos++
				return props, nil
			}
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		props[name] = v
	}
}

// Encode appends the encoding of v to dst. Supported types: nil, bool,
// string, all integer and float types, Object, ECMAArray, map[string]any
// (encoded as an object), []any, time.Time and Undefined.
func Encode(dst []byte, v any) ([]byte, error) {
	return encode(dst, v, 0)
}

// EncodeAll appends the encodings of vs to dst.
func EncodeAll(dst []byte, vs ...any) ([]byte, error) {
	var err error
	for _, v := range vs {
		if dst, err = encode(dst, v, 0); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func encode(dst []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, ErrTooDeep
	}
	switch x := v.(type) {
	case nil:
		return append(dst, markerNull), nil
	case Undefined:
		return append(dst, markerUndefined), nil
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		return append(dst, markerBoolean, b), nil
	case string:
		if len(x) > 0xffff {
			dst = append(dst, markerLongString)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
			return append(dst, x...), nil
		}
		dst = append(dst, markerString)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(x)))
		return append(dst, x...), nil
	case float64:
		return appendNumber(dst, x), nil
	case float32:
		return appendNumber(dst, float64(x)), nil
	case int:
		return appendNumber(dst, float64(x)), nil
	case int8:
		return appendNumber(dst, float64(x)), nil
	case int16:
		return appendNumber(dst, float64(x)), nil
	case int32:
		return appendNumber(dst, float64(x)), nil
	case int64:
		return appendNumber(dst, float64(x)), nil
	case uint:
		return appendNumber(dst, float64(x)), nil
	case uint8:
		return appendNumber(dst, float64(x)), nil
	case uint16:
		return appendNumber(dst, float64(x)), nil
	case uint32:
		return appendNumber(dst, float64(x)), nil
	case uint64:
		return appendNumber(dst, float64(x)), nil
	case time.Time:
		dst = append(dst, markerDate)
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(float64(x.UnixMilli())))
		return append(dst, 0, 0), nil
	case Object:
		return appendProps(append(dst, markerObject), x, depth)
	case map[string]any:
		return appendProps(append(dst, markerObject), x, depth)
	case ECMAArray:
		dst = append(dst, markerECMAArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		return appendProps(dst, x, depth)
	case []any:
		dst = append(dst, markerStrictArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		var err error
		for _, e := range x {
			if dst, err = encode(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	default:
		return dst, fmt.Errorf("%w: Go type %T", ErrUnsupported, v)
	}
}

func appendNumber(dst []byte, f float64) []byte {
	dst = append(dst, markerNumber)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

// appendProps writes properties in key order so that encodings are deterministic.
func appendProps(dst []byte, m map[string]any, depth int) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var err error
	for _, k := range keys {
		if len(k) > 0xffff {
			return dst, fmt.Errorf("amf0: property name of %d bytes is too long", len(k))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		if dst, err = encode(dst, m[k], depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, 0, 0, markerObjectEnd), nil
}
