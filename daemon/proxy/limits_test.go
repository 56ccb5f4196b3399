package proxy

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestWithRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	refused := errors.New("refused")
	for _, tt := range []struct {
		name   string
		status int
		header string
		want   time.Duration // -1: no RetryAfterError
	}{
		{"seconds", 429, "7", 7 * time.Second},
		{"zero seconds", 429, "0", 0},
		{"503 with seconds", 503, "120", 2 * time.Minute},
		{"an HTTP date", 429, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"an HTTP date in the past", 429, now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"an RFC 850 date", 429, now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Minute},
		{"negative seconds", 429, "-5", -1},
		{"garbage", 429, "soon", -1},
		{"none", 429, "", -1},
		{"another status", 500, "7", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			if tt.header != "" {
				resp.Header.Set("Retry-After", tt.header)
			}
			err := withRetryAfter(resp, refused, now)
			if !errors.Is(err, refused) {
				t.Fatalf("%v does not wrap the refusal", err)
			}
			var ra *RetryAfterError
			switch ok := errors.As(err, &ra); {
			case tt.want < 0 && ok:
				t.Errorf("Retry-After %q gave a wait of %v, want none", tt.header, ra.After)
			case tt.want >= 0 && !ok:
				t.Errorf("Retry-After %q gave no wait, want %v", tt.header, tt.want)
			case ok && ra.After != tt.want:
				t.Errorf("Retry-After %q gave %v, want %v", tt.header, ra.After, tt.want)
			}
		})
	}
}
