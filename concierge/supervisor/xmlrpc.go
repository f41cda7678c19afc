// Package supervisor drives a supervisord through its XML-RPC API (/RPC2).
// It works with both Debian's Python supervisor and ochinchina/supervisord,
// whose wire formats and capabilities differ in a few places (see Flavor),
// and can start and own an embedded supervisord (see Embedded).
package supervisor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds an XML-RPC response body (log tails are the largest).
const maxResponse = 8 << 20

// Fault is an XML-RPC fault returned by supervisord.
type Fault struct {
	Code    int
	Message string
}

func (f *Fault) Error() string { return fmt.Sprintf("supervisord fault %d: %s", f.Code, f.Message) }

// Python supervisor's fault codes (ochinchina answers -32500 with a message).
const (
	FaultBadName        = 10
	FaultNoFile         = 20
	FaultNotExecutable  = 21
	FaultFailed         = 30
	FaultAbnormalTerm   = 40
	FaultSpawnError     = 50
	FaultAlreadyStarted = 60
	FaultNotRunning     = 70
	FaultAlreadyAdded   = 90
	FaultStillRunning   = 91
	FaultCantReread     = 92
)

// IsFault reports whether err is a supervisord fault with one of the codes.
func IsFault(err error, codes ...int) bool {
	var f *Fault
	if !errors.As(err, &f) {
		return false
	}
	for _, c := range codes {
		if f.Code == c {
			return true
		}
	}
	return false
}

// rpcClient is a minimal XML-RPC client over HTTP or a unix socket.
type rpcClient struct {
	endpoint string // http URL of /RPC2
	user     string
	pass     string
	http     *http.Client
}

// newRPCClient accepts http://host:port[/RPC2] (optionally with user:pass@)
// or unix:///path/to/supervisor.sock.
func newRPCClient(raw string) (*rpcClient, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("supervisor url %q: %w", raw, err)
	}
	c := &rpcClient{}
	if u.User != nil {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
	}
	tr := &http.Transport{MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second}
	switch u.Scheme {
	case "http":
		if u.Host == "" {
			return nil, fmt.Errorf("supervisor url %q: missing host", raw)
		}
		p := u.Path
		if p == "" || p == "/" {
			p = "/RPC2"
		}
		c.endpoint = "http://" + u.Host + p
	case "unix":
		sock := u.Path
		if sock == "" {
			return nil, fmt.Errorf("supervisor url %q: missing socket path (unix:///path/to/sock)", raw)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		c.endpoint = "http://localhost/RPC2"
	default:
		return nil, fmt.Errorf("supervisor url %q: scheme must be http or unix", raw)
	}
	c.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return c, nil
}

// call invokes method and returns the decoded <param> values of the answer.
func (c *rpcClient) call(ctx context.Context, method string, args ...any) ([]any, error) {
	var body bytes.Buffer
	body.WriteString(`<?xml version="1.0"?><methodCall><methodName>`)
	xml.EscapeText(&body, []byte(method))
	body.WriteString(`</methodName><params>`)
	for _, a := range args {
		body.WriteString("<param>")
		if err := encodeValue(&body, a); err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		body.WriteString("</param>")
	}
	body.WriteString(`</params></methodCall>`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml")
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", method, err)
	}
	if len(raw) > maxResponse {
		return nil, fmt.Errorf("%s: answer larger than %d bytes", method, maxResponse)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(raw, []byte("<methodResponse")) {
		return nil, fmt.Errorf("%s: HTTP %d: %s", method, resp.StatusCode, snippet(raw))
	}
	params, err := decodeResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return params, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func encodeValue(w *bytes.Buffer, v any) error {
	w.WriteString("<value>")
	switch x := v.(type) {
	case string:
		w.WriteString("<string>")
		xml.EscapeText(w, []byte(x))
		w.WriteString("</string>")
	case int:
		fmt.Fprintf(w, "<int>%d</int>", x)
	case bool:
		if x {
			w.WriteString("<boolean>1</boolean>")
		} else {
			w.WriteString("<boolean>0</boolean>")
		}
	case []any:
		w.WriteString("<array><data>")
		for _, e := range x {
			if err := encodeValue(w, e); err != nil {
				return err
			}
		}
		w.WriteString("</data></array>")
	default:
		return fmt.Errorf("cannot encode %T as XML-RPC", v)
	}
	w.WriteString("</value>")
	return nil
}

// decodeResponse parses a methodResponse into its params, or a *Fault.
func decodeResponse(raw []byte) ([]any, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var params []any
	fault := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bad XML-RPC answer: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "fault":
			fault = true
		case "value":
			v, err := decodeValue(d)
			if err != nil {
				return nil, fmt.Errorf("bad XML-RPC answer: %w", err)
			}
			params = append(params, v)
		}
	}
	if fault {
		f := &Fault{}
		if len(params) == 1 {
			if m, ok := params[0].(map[string]any); ok {
				f.Code = asInt(m["faultCode"])
				f.Message = asString(m["faultString"])
			}
		}
		return nil, f
	}
	return params, nil
}

// decodeValue decodes the content of a <value> whose start tag was consumed.
func decodeValue(d *xml.Decoder) (any, error) {
	var text strings.Builder
	var result any
	typed := false
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			text.Write(t)
		case xml.EndElement: // </value>
			if !typed {
				return text.String(), nil // untyped value is a string
			}
			return result, nil
		case xml.StartElement:
			typed = true
			v, err := decodeTyped(d, t.Name.Local)
			if err != nil {
				return nil, err
			}
			result = v
		}
	}
}

func decodeTyped(d *xml.Decoder, typ string) (any, error) {
	switch typ {
	case "array":
		var out []any
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if t.Name.Local == "value" {
					v, err := decodeValue(d)
					if err != nil {
						return nil, err
					}
					out = append(out, v)
				}
			case xml.EndElement:
				if t.Name.Local == "array" {
					return out, nil
				}
			}
		}
	case "struct":
		out := map[string]any{}
		name := ""
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				switch t.Name.Local {
				case "name":
					var s string
					if err := d.DecodeElement(&s, &t); err != nil {
						return nil, err
					}
					name = strings.TrimSpace(s)
				case "value":
					v, err := decodeValue(d)
					if err != nil {
						return nil, err
					}
					out[name] = v
				}
			case xml.EndElement:
				if t.Name.Local == "struct" {
					return out, nil
				}
			}
		}
	}
	var s string
	start := xml.StartElement{Name: xml.Name{Local: typ}}
	if err := d.DecodeElement(&s, &start); err != nil {
		return nil, err
	}
	switch typ {
	case "int", "i4", "i8":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad int %q", s)
		}
		return int(n), nil
	case "boolean":
		return strings.TrimSpace(s) == "1", nil
	case "double":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("bad double %q", s)
		}
		return f, nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("bad base64: %w", err)
		}
		return string(b), nil
	case "nil":
		return nil, nil
	default: // string, dateTime.iso8601
		return s, nil
	}
}

func asInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case float64:
		return int(x)
	case bool:
		if x {
			return 1
		}
	case string:
		n, _ := strconv.Atoi(strings.TrimSpace(x))
		return n
	}
	return 0
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func asBool(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case int:
		return x != 0
	}
	return false
}

func asStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		out = append(out, asString(e))
	}
	return out
}
