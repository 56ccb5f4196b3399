package dialpolicy

import "testing"

func TestLoopback(t *testing.T) {
	tests := map[string]bool{
		"localhost": true, "localhost:5000": true, "LocalHost": true, "127.0.0.1:5000": true, "127.1.2.3": true,
		"[::1]:5000": true, "::1": true, "[::1]": true, "::ffff:127.0.0.1": true,
		"10.0.0.1:5000": false, "quay.io": false, "localhost.example.com": false, "192.168.1.1": false,
		"0.0.0.0:9090": false, "[::]:9090": false, ":9090": false, "": false,
	}
	for host, want := range tests {
		if got := Loopback(host); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", host, got, want)
		}
	}
}
