package token

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Tokens are 160 random bits in lowercase base32 without padding: 32
// characters of [a-z2-7], which fit a registry path component
// ([a-z0-9]+(?:[._-][a-z0-9]+)*) and survive copy and paste. 160 bits rather
// than the 128 minimum because Short shows 30 of them in messages and logs,
// and the part never shown stays above 128 bits.
const (
	tokenBytes = 20
	tokenLen   = 32 // base32 of 20 bytes, unpadded
	shortLen   = 6
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Token is a container token. Its String method shows the short form only,
// so a token printed with %v or logged with slog never leaks: call Secret
// where the whole token is meant to go (the answer, the target image).
type Token string

// Secret returns the whole token.
func (t Token) Secret() string { return string(t) }

// String returns the token's short form, as Short does.
func (t Token) String() string { return Short(string(t)) }

// LogValue implements slog.LogValuer with the short form.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

func newToken(rand io.Reader) (Token, error) {
	b := make([]byte, tokenBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return Token(encoding.EncodeToString(b)), nil
}

// Short returns the first characters of a token and an ellipsis, enough to
// tell tokens apart in a message. Anything after the first character that a
// token cannot hold is dropped, as s may come from a client's request path.
func Short(s string) string {
	n := 0
	for n < len(s) && n < shortLen && isTokenChar(s[n]) {
		n++
	}
	return s[:n] + "…"
}

func isTokenChar(c byte) bool {
	return ('a' <= c && c <= 'z') || ('2' <= c && c <= '7')
}

// wellFormed tells whether s could be a token at all.
func wellFormed(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

type hashKey [sha256.Size]byte

func hashOf(s string) hashKey { return sha256.Sum256([]byte(s)) }

// TargetImage is the name a client pulls for a token: host, then
// wt/<token>/<repository>, then the reference as a tag. A digest becomes the
// tag sha256-<hex>, because the pulled image is the rewritten one and could
// never match the upstream digest; the token alone decides the image, so the
// tag only helps people read the name.
func TargetImage(host string, tok Token, repository, reference string) string {
	tag := reference
	switch {
	case tag == "":
		tag = "latest"
	case strings.HasPrefix(tag, "sha256:"):
		tag = "sha256-" + strings.TrimPrefix(tag, "sha256:")
	}
	return host + "/wt/" + tok.Secret() + "/" + repository + ":" + tag
}
