package token

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// TestTokenEntropy: a token is the base32 of 160 bits read from the
// random source, all of them: 32 characters that decode back to exactly
// those bytes, and no two alike in many draws.
func TestTokenEntropy(t *testing.T) {
	src := bytes.Repeat([]byte{0xa5, 0x3c, 0xff, 0x00, 0x81}, 4)
	tok, err := newToken(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	got, err := encoding.DecodeString(tok.Secret())
	if err != nil || !bytes.Equal(got, src) || len(tok.Secret()) != tokenLen {
		t.Fatalf("token %q decodes to %x (%v), want the 20 random bytes %x", tok.Secret(), got, err, src)
	}
	if _, err := newToken(bytes.NewReader(src[:19])); err == nil {
		t.Fatal("a token was made from 19 random bytes")
	}
	seen := map[string]bool{}
	for range 10000 {
		tok, err := newToken(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok.Secret()] || !wellFormed(tok.Secret()) {
			t.Fatalf("token %q repeated or malformed", tok.Secret())
		}
		seen[tok.Secret()] = true
	}
}
