package s3fs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestErrno(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"no such key", minio.ErrorResponse{Code: minio.NoSuchKey, StatusCode: 404}, syscall.ENOENT},
		{"no such bucket", minio.ErrorResponse{Code: minio.NoSuchBucket, StatusCode: 404}, syscall.ENOENT},
		{"bare 404 (HEAD has no body)", minio.ErrorResponse{StatusCode: 404}, syscall.ENOENT},
		{"access denied", minio.ErrorResponse{Code: minio.AccessDenied, StatusCode: 403}, syscall.EACCES},
		{"bare 403", minio.ErrorResponse{StatusCode: 403}, syscall.EACCES},
		{"bad signature", minio.ErrorResponse{Code: "SignatureDoesNotMatch", StatusCode: 403}, syscall.EACCES},
		{"too large", minio.ErrorResponse{Code: "EntityTooLarge", StatusCode: 400}, syscall.EFBIG},
		{"still throttled after the retries", minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, syscall.EIO},
		{"wrapped", fmt.Errorf("get: %w", minio.ErrorResponse{Code: minio.NoSuchKey, StatusCode: 404}), syscall.ENOENT},
		{"an errno", fmt.Errorf("x: %w", syscall.ENOTSUP), syscall.ENOTSUP},
		{"canceled", context.Canceled, syscall.EINTR},
		{"deadline", context.DeadlineExceeded, syscall.ETIMEDOUT},
		{"network", errors.New("connection refused"), syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errno(tt.err); got != tt.want {
				t.Errorf("errno(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
