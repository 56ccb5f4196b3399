package fusion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/tower-reg/tower-reg/layer/fusion/s3fs"
)

// Error is a failure to mount, worded for the person who ran the
// container: what went wrong and what to change, on one line.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

const fixDevice = "run the container with --device /dev/fuse --cap-add SYS_ADMIN"

// Client returns an S3 client for cfg.
func Client(cfg Config) (*minio.Client, error) {
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	if cfg.Anonymous {
		// Unsigned requests: what a public bucket accepts.
		creds = credentials.New(&credentials.Static{Value: credentials.Value{SignerType: credentials.SignatureAnonymous}})
	}
	transport, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("S3 transport: %w", err)
	}
	// Read-ahead streams and listings share the connections; the default
	// (a few idle per host) would reconnect for every seek.
	transport.MaxIdleConnsPerHost = 16
	transport.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       cfg.Secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    http.RoundTripper(transport),
	})
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("S3 endpoint %s: %v; check AWS_ENDPOINT_URL", cfg.URL(), err), Err: err}
	}
	return c, nil
}

// Check asks each bucket for one key, concurrently, so that wrong
// credentials, a bucket that does not exist and an unreachable endpoint
// are reported before anything runs on the mount.
func Check(ctx context.Context, client *minio.Client, cfg Config) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, b := range cfg.Buckets {
		g.Go(func() error { return checkBucket(ctx, client, cfg, b) })
	}
	return g.Wait()
}

func checkBucket(ctx context.Context, client *minio.Client, cfg Config, bucket string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var err error
	for obj := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{MaxKeys: 1}) {
		err = obj.Err
		break
	}
	if err == nil {
		return nil
	}
	return bucketError(cfg, bucket, err)
}

// bucketError words a failed listing of bucket.
func bucketError(cfg Config, bucket string, err error) error {
	where := fmt.Sprintf("bucket %q at %s", bucket, cfg.URL())
	var resp minio.ErrorResponse
	errors.As(err, &resp)
	var msg string
	switch {
	case resp.Code == minio.NoSuchBucket || (resp.StatusCode == http.StatusNotFound && resp.Code == ""):
		msg = fmt.Sprintf("%s does not exist; fix %s (or AWS_ENDPOINT_URL)", where, BucketsEnv)
	case resp.Code == "InvalidAccessKeyId" || strings.Contains(strings.ToLower(resp.Message), "access key"):
		msg = fmt.Sprintf("%s: the access key is unknown (InvalidAccessKeyId); check AWS_ACCESS_KEY_ID", where)
	case resp.Code == "SignatureDoesNotMatch":
		msg = fmt.Sprintf("%s: the secret key does not match the access key (SignatureDoesNotMatch); check AWS_SECRET_ACCESS_KEY", where)
	case resp.Code == "ExpiredToken" || resp.Code == "InvalidToken":
		msg = fmt.Sprintf("%s: the session token is expired or invalid (%s); renew AWS_SESSION_TOKEN", where, resp.Code)
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized || resp.Code == minio.AccessDenied:
		if cfg.Anonymous {
			msg = fmt.Sprintf("%s: access denied without credentials (the bucket is not public); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", where)
		} else {
			msg = fmt.Sprintf("%s: access denied (%s); give credentials allowed to list it", where, resp.Code)
		}
	case resp.Code == "AuthorizationHeaderMalformed" || resp.Code == "PermanentRedirect":
		msg = fmt.Sprintf("%s is in another region (%s); set AWS_REGION to the bucket's region", where, resp.Code)
	case resp.StatusCode != 0:
		msg = fmt.Sprintf("%s: S3 answered %d %s: %s", where, resp.StatusCode, resp.Code, resp.Message)
	default:
		msg = fmt.Sprintf("cannot reach S3 at %s (%v); check AWS_ENDPOINT_URL and the container's network", cfg.URL(), err)
	}
	return &Error{Msg: msg, Err: err}
}

// Mount checks the buckets, then mounts them at cfg.Mountpoint and waits
// until the kernel serves the mount. ctx bounds the check; bg bounds the
// file system's background transfers for as long as it is mounted.
func Mount(ctx, bg context.Context, cfg Config, logger *slog.Logger) (*fuse.Server, error) {
	if uid := os.Geteuid(); uid != 0 {
		// Capabilities given to the container are not effective for a
		// non-root user, and there is no fusermount to lend them.
		return nil, &Error{Msg: fmt.Sprintf("the container runs as user %d, and only root can mount FUSE here; run it with --user 0 (and --device /dev/fuse --cap-add SYS_ADMIN)", uid)}
	}
	if err := os.MkdirAll(cfg.Mountpoint, 0o755); err != nil {
		return nil, &Error{Msg: fmt.Sprintf("cannot create the mount point %s (%v); the image's file system must be writable there, or set %s", cfg.Mountpoint, err, MountEnv), Err: err}
	}
	// go-fuse opens it too; opening it first tells a missing device from
	// a refused mount.
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("cannot open /dev/fuse (%v); %s", errors.Unwrap(err), fixDevice), Err: err}
	}
	dev.Close()

	client, err := Client(cfg)
	if err != nil {
		return nil, err
	}
	if err := Check(ctx, client, cfg); err != nil {
		return nil, err
	}
	root := s3fs.NewRoot(bg, client, cfg.Buckets, s3fs.Options{
		AttrTTL: cfg.AttrTTL,
		DirTTL:  cfg.DirTTL,
		Logger:  logger,
		Debug:   cfg.LogLevel < slog.LevelDebug,
		UID:     cfg.UID,
		GID:     cfg.GID,
		// Zero: the client's defaults.
		ReadStreams: cfg.ReadStreams,
		ReadPart:    int(cfg.ReadPart),
		UploadParts: cfg.UploadStreams,
		PartSize:    uint64(cfg.UploadPart),
	})
	opts := s3fs.MountOptions(root, "fusion-s3")
	server, err := fs.Mount(cfg.Mountpoint, root, opts)
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return nil, &Error{Msg: fmt.Sprintf("mounting FUSE at %s is not permitted (%v); %s", cfg.Mountpoint, err, fixDevice), Err: err}
		}
		return nil, &Error{Msg: fmt.Sprintf("mount FUSE at %s: %v", cfg.Mountpoint, err), Err: err}
	}
	if err := server.WaitMount(); err != nil {
		_ = server.Unmount()
		return nil, &Error{Msg: fmt.Sprintf("the FUSE mount at %s did not come up: %v", cfg.Mountpoint, err), Err: err}
	}
	raiseReadAhead(cfg.Mountpoint, logger)
	return server, nil
}

// raiseReadAhead asks the kernel to read ahead 1 MiB on the mount instead
// of its default 128 KiB, so a sequential reader costs a FUSE request per
// MiB. The kernel caps a FUSE mount's read-ahead at that default whatever
// the file system says at init; only the mount's bdi setting raises it.
// Best effort: /sys is often read-only in a container.
func raiseReadAhead(mountpoint string, logger *slog.Logger) {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte("1024"), 0); err != nil {
		logger.Debug("read-ahead stays at the kernel's default", "err", err)
	}
}

// Unmount detaches the mount even when a process still uses it (a lazy
// unmount), so the server can exit.
func Unmount(server *fuse.Server, mountpoint string) error {
	if err := server.Unmount(); err != nil {
		if err2 := syscall.Unmount(mountpoint, syscall.MNT_DETACH); err2 != nil {
			return fmt.Errorf("unmount %s: %w (lazy: %w)", mountpoint, err, err2)
		}
	}
	return nil
}
