// Package tunnel gives the daemon's public handler a public address: a
// tunnel connects to a provider (ngrok) and hands back a net.Listener
// whose connections come from the public URL.
//
// A tunnel reports every change of its state (connecting, up with its URL,
// reconnecting, down) with the reason in plain words, through a callback
// of plain strings: the daemon declares the interface it consumes, and
// this package imports nothing of the daemon, so that the daemon builds
// without the provider's SDK. A tunnel that cannot connect keeps trying
// and keeps saying why: it never takes the daemon down with it.
package tunnel

// The states a tunnel reports. They are the daemon's event.Tunnel*
// states, which the daemon passes on unchanged (a test holds them equal).
const (
	Connecting   = "connecting"
	Up           = "up"
	Reconnecting = "reconnecting"
	Down         = "down"
)
