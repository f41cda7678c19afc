package amf0

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	date := time.UnixMilli(1700000000123).UTC()
	long := string(bytes.Repeat([]byte("x"), 70000))
	cases := []any{
		1.5, 0.0, true, false, "", "hello", long, nil, Undefined{}, date,
		Object{"app": "live", "n": 3.0, "nested": Object{"a": []any{1.0, "b", nil}}},
		ECMAArray{"width": 640.0, "height": 360.0, "encoder": "Lavf"},
		[]any{},
	}
	for _, v := range cases {
		b, err := Encode(nil, v)
		if err != nil {
			t.Fatalf("Encode(%T): %v", v, err)
		}
		got, n, err := Decode(b)
		if err != nil || n != len(b) {
			t.Fatalf("Decode(%T): %v, used %d of %d", v, err, n, len(b))
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip %T: got %#v", v, got)
		}
	}
}

func TestEncodeIntegersAndMaps(t *testing.T) {
	b, err := EncodeAll(nil, "connect", 1, map[string]any{"x": uint32(7)})
	if err != nil {
		t.Fatal(err)
	}
	vals, err := DecodeAll(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"connect", 1.0, Object{"x": 7.0}}
	if !reflect.DeepEqual(vals, want) {
		t.Fatalf("got %#v", vals)
	}
	if _, err := Encode(nil, struct{}{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unsupported Go type: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	deep := bytes.Repeat([]byte{markerStrictArray, 0, 0, 0, 1}, MaxDepth+2)
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"empty":             {nil, ErrShort},
		"short number":      {[]byte{0, 1, 2}, ErrShort},
		"short string":      {[]byte{2, 0, 5, 'a'}, ErrShort},
		"huge long string":  {[]byte{0x0c, 0xff, 0xff, 0xff, 0xff}, ErrShort},
		"huge strict array": {[]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 5}, ErrShort},
		"unterminated obj":  {[]byte{3, 0, 1, 'a', 5}, ErrShort},
		"reference":         {[]byte{7, 0, 1}, ErrUnsupported},
		"amf3 switch":       {[]byte{0x11, 1}, ErrUnsupported},
		"too deep":          {deep, ErrTooDeep},
	}
	for name, c := range cases {
		if _, _, err := Decode(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestTypedObjectAndObjectEndInECMA(t *testing.T) {
	// typed object "C" {a: null}
	b := []byte{0x10, 0, 1, 'C', 0, 1, 'a', 5, 0, 0, 9}
	v, _, err := Decode(b)
	if err != nil || !reflect.DeepEqual(v, Object{"a": nil}) {
		t.Fatalf("%#v %v", v, err)
	}
	// ECMA array whose count disagrees with its content
	b = []byte{8, 0, 0, 0, 9, 0, 1, 'k', 1, 1, 0, 0, 9}
	v, _, err = Decode(b)
	if err != nil || !reflect.DeepEqual(v, ECMAArray{"k": true}) {
		t.Fatalf("%#v %v", v, err)
	}
}

func FuzzAMF0(f *testing.F) {
	seed, _ := EncodeAll(nil, "onMetaData", ECMAArray{"width": 1280.0, "duration": 0.0, "encoder": "Lavf59"}, Object{"o": []any{true, nil}})
	f.Add(seed)
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		vals, err := DecodeAll(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same values.
		enc, err := EncodeAll(nil, vals...)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeAll(enc)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if len(again) != len(vals) {
			t.Fatalf("%d values became %d", len(vals), len(again))
		}
	})
}
