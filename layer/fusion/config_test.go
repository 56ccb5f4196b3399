package fusion

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFromEnv(t *testing.T) {
	creds := map[string]string{"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SECRETVALUE"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range creds {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "defaults: AWS, us-east-1",
			env:  with(map[string]string{BucketsEnv: "aaa"}),
			check: func(t *testing.T, c Config) {
				if c.URL() != "https://s3.amazonaws.com" || c.PathStyle || c.Region != "us-east-1" || c.Mountpoint != DefaultMount {
					t.Errorf("got %+v", c)
				}
				if c.AttrTTL != 5*time.Second || c.DirTTL != 5*time.Second || c.LogLevel != slog.LevelWarn {
					t.Errorf("TTLs %v %v, level %v", c.AttrTTL, c.DirTTL, c.LogLevel)
				}
			},
		},
		{
			name: "several buckets, spaces, s3:// and duplicates",
			env:  with(map[string]string{BucketsEnv: " aaa , s3://bbb/,aaa,,ccc"}),
			check: func(t *testing.T, c Config) {
				if !slices.Equal(c.Buckets, []string{"aaa", "bbb", "ccc"}) {
					t.Errorf("buckets %q", c.Buckets)
				}
			},
		},
		{
			name: "region picks the regional endpoint; AWS_REGION over AWS_DEFAULT_REGION",
			env:  with(map[string]string{BucketsEnv: "aaa", "AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "eu-west-1"}),
			check: func(t *testing.T, c Config) {
				if c.Region != "eu-west-1" || c.Endpoint != "s3.eu-west-1.amazonaws.com" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "AWS_DEFAULT_REGION alone",
			env:  with(map[string]string{BucketsEnv: "aaa", "AWS_DEFAULT_REGION": "eu-west-3"}),
			check: func(t *testing.T, c Config) {
				if c.Region != "eu-west-3" {
					t.Errorf("region %q", c.Region)
				}
			},
		},
		{
			name: "endpoint: path style, http",
			env:  with(map[string]string{BucketsEnv: "aaa", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}),
			check: func(t *testing.T, c Config) {
				if c.Endpoint != "127.0.0.1:9000" || c.Secure || !c.PathStyle {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "AWS_ENDPOINT_URL_S3 wins",
			env:  with(map[string]string{BucketsEnv: "aaa", "AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_S3": "https://s3.example.test"}),
			check: func(t *testing.T, c Config) {
				if c.URL() != "https://s3.example.test" || !c.PathStyle {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "no credentials: anonymous",
			env:  map[string]string{BucketsEnv: "aaa"},
			check: func(t *testing.T, c Config) {
				if !c.Anonymous {
					t.Error("not anonymous")
				}
			},
		},
		{
			name: "session token, TTLs, mount, log level",
			env: with(map[string]string{BucketsEnv: "aaa", "AWS_SESSION_TOKEN": "TOK", AttrTTLEnv: "1s", DirTTLEnv: "0",
				MountEnv: "/mnt/x", LogLevelEnv: "debug"}),
			check: func(t *testing.T, c Config) {
				if c.SessionToken != "TOK" || c.AttrTTL != time.Second || c.DirTTL != time.Nanosecond ||
					c.Mountpoint != "/mnt/x" || c.LogLevel != slog.LevelDebug {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "transfers",
			env: with(map[string]string{BucketsEnv: "aaa", ReadStreamsEnv: "16", ReadPartEnv: "4MiB",
				UploadStreamsEnv: "6", UploadPartEnv: "33554432"}),
			check: func(t *testing.T, c Config) {
				if c.ReadStreams != 16 || c.ReadPart != 4<<20 || c.UploadStreams != 6 || c.UploadPart != 32<<20 {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "transfers unset: the client's defaults",
			env:  with(map[string]string{BucketsEnv: "aaa"}),
			check: func(t *testing.T, c Config) {
				if c.ReadStreams != 0 || c.ReadPart != 0 || c.UploadStreams != 0 || c.UploadPart != 0 {
					t.Errorf("got %+v", c)
				}
			},
		},
		{name: "no streams", env: with(map[string]string{BucketsEnv: "aaa", ReadStreamsEnv: "0"}), wantErr: "NXF_FUSION_READ_STREAMS=\"0\": want a number of connections from 1 to 64"},
		{name: "upload part under S3's minimum", env: with(map[string]string{BucketsEnv: "aaa", UploadPartEnv: "4M"}), wantErr: "NXF_FUSION_UPLOAD_PART=\"4M\": want a size from 5MiB to 1GiB"},
		{name: "size with a bad unit", env: with(map[string]string{BucketsEnv: "aaa", ReadPartEnv: "8MB"}), wantErr: "NXF_FUSION_READ_PART"},
		{name: "no bucket", env: with(map[string]string{BucketsEnv: " , "}), wantErr: "NXF_FUSION_BUCKETS names no bucket"},
		{name: "bad bucket name", env: with(map[string]string{BucketsEnv: "Bad_Bucket"}), wantErr: `"Bad_Bucket" is not a bucket name`},
		{name: "half the credentials", env: map[string]string{BucketsEnv: "aaa", "AWS_ACCESS_KEY_ID": "AK"}, wantErr: "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{name: "bad endpoint", env: with(map[string]string{BucketsEnv: "aaa", "AWS_ENDPOINT_URL": "127.0.0.1:9000"}), wantErr: "is not an http:// or https:// URL"},
		{name: "bad TTL", env: with(map[string]string{BucketsEnv: "aaa", AttrTTLEnv: "5"}), wantErr: "NXF_FUSION_ATTR_TTL=\"5\" is not a duration"},
		{name: "bad log level", env: with(map[string]string{BucketsEnv: "aaa", LogLevelEnv: "loud"}), wantErr: "NXF_FUSION_LOG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(getenv(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
			// No secret in any printed form.
			for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%v", c), slog.AnyValue(c).Resolve().String()} {
				if strings.Contains(s, "SECRETVALUE") || strings.Contains(s, "TOK") {
					t.Errorf("secret printed: %s", s)
				}
			}
		})
	}
}

func TestEnabled(t *testing.T) {
	for v, want := range map[string]bool{"": false, "  ": false, "aaa": true, "aaa,bbb": true} {
		if got := Enabled(getenv(map[string]string{BucketsEnv: v})); got != want {
			t.Errorf("Enabled(%q) = %v, want %v", v, got, want)
		}
	}
}
