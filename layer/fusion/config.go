// Package fusion mounts S3 buckets at /fusion/s3/<bucket> from inside a
// container, for the entry binary of the default layer.
//
// The entry calls Start when NXF_FUSION_BUCKETS is set: it starts the same
// binary again as the FUSE server (see Serve), waits until every bucket
// answered and the mount is up, and only then lets the entry exec the
// image's program. The server stays behind as that program's child, in a
// session of its own, for the life of the container.
//
// S3 is reached with minio-go rather than aws-sdk-go-v2: it is one module
// with the signing, the multipart streaming upload, the paginated listing
// and the retries of throttled requests built in, where the SDK needs its
// S3 client, config and transfer manager modules, in a binary that goes
// into every image.
package fusion

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// The variables the user sets. The AWS ones are the standard names, so the
// same -e flags serve the AWS CLI in the container too.
const (
	BucketsEnv  = "NXF_FUSION_BUCKETS"
	AttrTTLEnv  = "NXF_FUSION_ATTR_TTL"
	DirTTLEnv   = "NXF_FUSION_DIR_TTL"
	LogLevelEnv = "NXF_FUSION_LOG"
	// The transfers: how many ranged GETs a sequential reader runs at
	// once and how big each is; how many parts of an upload are sent at
	// once and how big each is.
	ReadStreamsEnv   = "NXF_FUSION_READ_STREAMS"
	ReadPartEnv      = "NXF_FUSION_READ_PART"
	UploadStreamsEnv = "NXF_FUSION_UPLOAD_STREAMS"
	UploadPartEnv    = "NXF_FUSION_UPLOAD_PART"
	// MountEnv moves the mount point; tests on the host use it.
	MountEnv = "NXF_FUSION_MOUNT"
	// OwnerEnv ("uid:gid") is who the files appear to belong to. The
	// entry sets it, with WithOwner, to the user the image's program runs
	// as: the mount enforces mode bits, and that user must be able to
	// write. Unset, it is the mounting process's user.
	OwnerEnv = "TOWERREG_FUSION_OWNER"
)

// DefaultMount is where the buckets appear.
const DefaultMount = "/fusion/s3"

// Config is what the environment asks for.
type Config struct {
	Buckets    []string
	Mountpoint string
	// Endpoint is host[:port]; Secure says https.
	Endpoint string
	Secure   bool
	// PathStyle is set with a custom endpoint: S3-compatible stores
	// seldom have a DNS name per bucket.
	PathStyle bool
	Region    string
	// Anonymous is set when no access key is given: public buckets only.
	Anonymous                          bool
	AccessKey, SecretKey, SessionToken string
	AttrTTL, DirTTL                    time.Duration
	LogLevel                           slog.Level
	// ReadStreams, ReadPart, UploadStreams and UploadPart size the
	// transfers; 0 is the client's default.
	ReadStreams, UploadStreams int
	ReadPart, UploadPart       int64
	// UID and GID own every file and directory of the mount.
	UID, GID uint32
}

// LogValue keeps the secrets out of any log line that prints a Config.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("buckets", c.Buckets),
		slog.String("mount", c.Mountpoint),
		slog.String("endpoint", c.URL()),
		slog.String("region", c.Region),
		slog.Bool("anonymous", c.Anonymous),
	)
}

// String is LogValue for fmt: no secret.
func (c Config) String() string { return c.LogValue().String() }

// URL is the endpoint as the user would write it.
func (c Config) URL() string {
	scheme := "https"
	if !c.Secure {
		scheme = "http"
	}
	return scheme + "://" + c.Endpoint
}

// Enabled reports whether the environment asks for a mount at all.
func Enabled(getenv func(string) string) bool {
	return strings.TrimSpace(getenv(BucketsEnv)) != ""
}

// FromEnv reads the configuration. Errors name the variable to fix.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Mountpoint: DefaultMount,
		Region:     "us-east-1",
		AttrTTL:    5 * time.Second,
		DirTTL:     5 * time.Second,
		LogLevel:   slog.LevelWarn,
		UID:        uint32(os.Geteuid()),
		GID:        uint32(os.Getegid()),
	}
	if v := getenv(OwnerEnv); v != "" {
		uid, gid, err := parseOwner(v)
		if err != nil {
			return Config{}, err
		}
		c.UID, c.GID = uid, gid
	}
	seen := map[string]bool{}
	for _, b := range strings.Split(getenv(BucketsEnv), ",") {
		b = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(b), "s3://"), "/")
		if b == "" || seen[b] {
			continue
		}
		if err := s3utils.CheckValidBucketNameStrict(b); err != nil {
			return Config{}, fmt.Errorf("%s: %q is not a bucket name (%w); give bucket names separated by commas", BucketsEnv, b, err)
		}
		seen[b] = true
		c.Buckets = append(c.Buckets, b)
	}
	if len(c.Buckets) == 0 {
		return Config{}, fmt.Errorf("%s names no bucket; give bucket names separated by commas", BucketsEnv)
	}
	if m := getenv(MountEnv); m != "" {
		c.Mountpoint = m
	}
	for _, name := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if r := getenv(name); r != "" {
			c.Region = r
			break
		}
	}
	endpoint := getenv("AWS_ENDPOINT_URL_S3")
	if endpoint == "" {
		endpoint = getenv("AWS_ENDPOINT_URL")
	}
	if endpoint == "" {
		c.Endpoint, c.Secure = "s3.amazonaws.com", true
		if c.Region != "us-east-1" {
			c.Endpoint = "s3." + c.Region + ".amazonaws.com"
		}
	} else {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return Config{}, fmt.Errorf("AWS_ENDPOINT_URL %q is not an http:// or https:// URL", endpoint)
		}
		c.Endpoint, c.Secure, c.PathStyle = u.Host, u.Scheme == "https", true
	}
	c.AccessKey, c.SecretKey = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	c.SessionToken = getenv("AWS_SESSION_TOKEN")
	switch {
	case c.AccessKey == "" && c.SecretKey == "":
		c.Anonymous = true
	case c.AccessKey == "" || c.SecretKey == "":
		return Config{}, errors.New("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither for public buckets")
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{AttrTTLEnv, &c.AttrTTL}, {DirTTLEnv, &c.DirTTL}} {
		v := getenv(d.name)
		if v == "" {
			continue
		}
		ttl, err := time.ParseDuration(v)
		if err != nil || ttl < 0 {
			return Config{}, fmt.Errorf("%s=%q is not a duration such as 5s or 500ms", d.name, v)
		}
		if ttl == 0 {
			// go-fuse and s3fs read 0 as "the default"; a nanosecond is
			// as good as none.
			ttl = time.Nanosecond
		}
		*d.dst = ttl
	}
	if err := c.transfers(getenv); err != nil {
		return Config{}, err
	}
	if v := getenv(LogLevelEnv); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return Config{}, fmt.Errorf("%s=%q: want debug, info, warn or error", LogLevelEnv, v)
		}
	}
	return c, nil
}

// WithOwner returns env with OwnerEnv set to uid:gid, in place of any
// value it had: a process's environment answers with its first entry.
func WithOwner(env []string, uid, gid int) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, OwnerEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, fmt.Sprintf("%s=%d:%d", OwnerEnv, uid, gid))
}

func parseOwner(v string) (uid, gid uint32, err error) {
	u, g, ok := strings.Cut(v, ":")
	uid64, err1 := strconv.ParseUint(u, 10, 31)
	gid64, err2 := strconv.ParseUint(g, 10, 31)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%s=%q is not uid:gid", OwnerEnv, v)
	}
	return uint32(uid64), uint32(gid64), nil
}

// Bounds of the transfer settings. S3 takes parts of 5 MiB and more
// (but the last), and 10,000 of them: the upload part bounds the size of
// a file written (16 MiB: 156 GiB).
const (
	minUploadPart = 5 << 20
	maxPart       = 1 << 30
	maxStreams    = 64
)

func (c *Config) transfers(getenv func(string) string) error {
	for _, s := range []struct {
		name string
		dst  *int
	}{{ReadStreamsEnv, &c.ReadStreams}, {UploadStreamsEnv, &c.UploadStreams}} {
		v := getenv(s.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxStreams {
			return fmt.Errorf("%s=%q: want a number of connections from 1 to %d", s.name, v, maxStreams)
		}
		*s.dst = n
	}
	for _, s := range []struct {
		name string
		min  int64
		dst  *int64
	}{{ReadPartEnv, 1 << 20, &c.ReadPart}, {UploadPartEnv, minUploadPart, &c.UploadPart}} {
		v := getenv(s.name)
		if v == "" {
			continue
		}
		n, err := parseSize(v)
		if err != nil || n < s.min || n > maxPart {
			return fmt.Errorf("%s=%q: want a size from %dMiB to 1GiB, such as 8MiB", s.name, v, s.min>>20)
		}
		*s.dst = n
	}
	return nil
}

// parseSize reads a byte count with an optional binary unit: 8MiB, 8M,
// 512KiB, 8388608.
func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mul    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}}
	mul := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mul = n, u.mul
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > maxPart {
		return 0, fmt.Errorf("not a size: %q", v)
	}
	return n * mul, nil
}
