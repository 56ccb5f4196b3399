package tunnel

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

type ngrokErr struct{ code, msg string }

func (e ngrokErr) Error() string { return e.msg }
func (e ngrokErr) Code() string  { return e.code }

// TestPlainWords: each failure reads as what to do about it, and never
// holds the auth token, even when ngrok's message quotes it.
func TestPlainWords(t *testing.T) {
	const token = "2secretTok3n"
	addr := &net.TCPAddr{IP: net.IPv4(3, 20, 1, 1), Port: 443}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"dns", fmt.Errorf("failed to dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Name: "connect.ngrok-agent.com", Err: "no such host", IsNotFound: true}}),
			"cannot reach ngrok: looking up connect.ngrok-agent.com failed (no such host); is this machine offline?"},
		{"timeout", &net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: os.ErrDeadlineExceeded},
			"cannot reach ngrok at 3.20.1.1:443: no answer within 5s"},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
			"cannot reach ngrok at 3.20.1.1:443: connection refused"},
		{"unreachable", &net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: os.NewSyscallError("connect", syscall.ENETUNREACH)},
			"cannot reach ngrok: no route to it"},
		{"bad token", fmt.Errorf("authentication failed: %w", ngrokErr{"ERR_NGROK_105", "The authtoken you specified does not look like a proper ngrok authtoken.\nYour authtoken: " + token}),
			"ngrok refused the auth token (ERR_NGROK_105): check NGROK_AUTHTOKEN"},
		{"other ngrok error", ngrokErr{"ERR_NGROK_320", "The domain 'reg.example' is reserved for another account: " + token + "\nmore"},
			"ngrok refused: The domain 'reg.example' is reserved for another account: [auth token] (ERR_NGROK_320)"},
		{"anything else", errors.New("odd failure quoting " + token), "odd failure quoting [auth token]"},
	}
	n, err := NewNgrok(NgrokOptions{Authtoken: token})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := n.plain(tt.err)
			if !strings.HasPrefix(got, tt.want) || strings.Contains(got, token) {
				t.Errorf("plain = %q, want it to start %q, without the token", got, tt.want)
			}
		})
	}
}
