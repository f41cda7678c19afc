package controlclient

import "net"

// AdvertiseAddr is the address a node registers for its listener ln: the
// explicit one if given, else ln's address with 127.0.0.1 for an
// unspecified host (":8081" listens everywhere but is not a place to dial).
func AdvertiseAddr(explicit string, ln net.Listener) string {
	if explicit != "" || ln == nil {
		return explicit
	}
	host, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return ln.Addr().String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
