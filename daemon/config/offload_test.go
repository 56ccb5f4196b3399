package config

import (
	"testing"
	"time"
)

func TestLoadOffload(t *testing.T) {
	runLoadCases(t, []loadCase{
		{name: "all set", yaml: "offload:\n  url: s3://layers/dev/alice/\n  endpoint: http://127.0.0.1:7070\n  region: eu-west-1\n  presign_ttl: 5m\n  upstream_blobs: true\n  recheck: 30s\n",
			want: func(t *testing.T, c Config) {
				o := c.Offload
				b, p, err := ParseOffloadURL(o.URL)
				if !o.On() || b != "layers" || p != "dev/alice" || err != nil || o.Endpoint != "http://127.0.0.1:7070" ||
					o.Region != "eu-west-1" || o.TTL() != 5*time.Minute || !o.UpstreamBlobs || o.RecheckEvery() != 30*time.Second {
					t.Fatalf("got %+v: bucket %q prefix %q %v", o, b, p, err)
				}
			}},
		{name: "bucket only, default ttl", yaml: "offload:\n  url: s3://layers\n", want: func(t *testing.T, c Config) {
			b, p, err := ParseOffloadURL(c.Offload.URL)
			if b != "layers" || p != "" || err != nil || c.Offload.TTL() != DefaultPresignTTL || c.Offload.RecheckEvery() != DefaultRecheck {
				t.Fatalf("bucket %q prefix %q %v ttl %v recheck %v", b, p, err, c.Offload.TTL(), c.Offload.RecheckEvery())
			}
		}},
		{name: "off by default", yaml: "listen: 127.0.0.1:1\n", want: func(t *testing.T, c Config) {
			if c.Offload.On() {
				t.Fatalf("offload on: %+v", c.Offload)
			}
		}},
		{name: "bad scheme", yaml: "listen: 127.0.0.1:1\noffload:\n  url: https://layers.s3.amazonaws.com/x\n", wantErr: `config.yml:3: offload.url: "https://layers.s3.amazonaws.com/x": want an s3:// URL`},
		{name: "missing bucket", yaml: "offload:\n  url: s3:///prefix\n", wantErr: `config.yml:2: offload.url: "s3:///prefix" names no bucket`},
		{name: "credentials in the url", yaml: "offload:\n  url: s3://AKIA:secret@layers/x\n", wantErr: `config.yml:2: offload.url`},
		{name: "bad duration", yaml: "offload:\n  url: s3://layers\n  presign_ttl: quarter-hour\n", wantErr: `config.yml:3: offload.presign_ttl: "quarter-hour" is not a duration`},
		{name: "bad recheck", yaml: "offload:\n  url: s3://layers\n  recheck: often\n", wantErr: `config.yml:3: offload.recheck: "often" is not a duration`},
		{name: "ttl over a week", yaml: "offload:\n  url: s3://layers\n  presign_ttl: 200h\n", wantErr: `config.yml:3: offload.presign_ttl: "200h" is longer than 7 days`},
		{name: "bad endpoint", yaml: "offload:\n  url: s3://layers\n  endpoint: 127.0.0.1:7070\n", wantErr: `config.yml:3: offload.endpoint: "127.0.0.1:7070" is not a URL`},
		{name: "endpoint without url, for --offload", yaml: "offload:\n  endpoint: http://127.0.0.1:7070\n", want: func(t *testing.T, c Config) {
			if c.Offload.On() || c.Offload.Endpoint != "http://127.0.0.1:7070" {
				t.Fatalf("got %+v", c.Offload)
			}
		}},
		{name: "bad endpoint without url", yaml: "offload:\n  endpoint: ftp://x\n", wantErr: `config.yml:2: offload.endpoint`},
		{name: "unknown key", yaml: "offload:\n  bucket: layers\n", wantErr: "bucket"},
	})
}
