package main

import (
	"strings"
	"testing"

	"github.com/tower-reg/tower-reg/daemon/config"
)

func TestNewTunnel(t *testing.T) {
	tests := []struct {
		name    string
		c       config.Tunnel
		env     string
		want    string // the provider; "off" for no tunnel
		wantErr string
	}{
		{name: "default, no token", want: "off"},
		{name: "default, token in the environment", env: "tok", want: "ngrok"},
		{name: "off", c: config.Tunnel{Provider: "off"}, env: "tok", want: "off"},
		{name: "ngrok", c: config.Tunnel{Provider: "ngrok", Authtoken: "tok"}, want: "ngrok"},
		{name: "ngrok without a token", c: config.Tunnel{Provider: "ngrok"}, wantErr: "needs an auth token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(config.DefaultAuthtokenEnv, tt.env)
			got, err := newTunnel(tt.c, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newTunnel: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newTunnel: %v", err)
			}
			provider := "off"
			if got != nil {
				provider = got.Provider()
			}
			if provider != tt.want {
				t.Fatalf("newTunnel = %v (%s); want %s", got, provider, tt.want)
			}
		})
	}
}
