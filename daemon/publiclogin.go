package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tower-reg/tower-reg/daemon/config"
	"github.com/tower-reg/tower-reg/daemon/public"
)

// defaultPublicUser is the public login's user name when the config names
// none.
const defaultPublicUser = "towerreg"

// publicPasswordFile holds the generated public password in the state
// directory, so that a `docker login` made once keeps working across
// restarts.
const publicPasswordFile = "public-password"

// publicLogin returns the login of the public handler: the config's, or a
// generated password kept in stateDir, and that file's path.
func publicLogin(c config.Public, stateDir string) (public.Credential, string, error) {
	user := c.Username
	if user == "" {
		user = defaultPublicUser
	}
	pw, err := c.Secret()
	if err != nil {
		return public.Credential{}, "", fmt.Errorf("public login: %w", err)
	}
	if pw != "" {
		return public.Credential{Username: user, Password: pw}, "", nil
	}
	if stateDir == "" {
		// Nowhere to keep a generated password: no login at all, so the
		// public handler serves anonymous and token pulls only.
		return public.Credential{}, "", nil
	}
	path := filepath.Join(stateDir, publicPasswordFile)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return public.Credential{Username: user, Password: strings.TrimSpace(string(b))}, path, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return public.Credential{}, "", fmt.Errorf("public login: %w", err)
	}
	pw = rand.Text() // 26 base32 characters: 130 bits
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return public.Credential{}, "", fmt.Errorf("public login: %w", err)
	}
	tmp, err := os.CreateTemp(stateDir, publicPasswordFile+".*")
	if err != nil {
		return public.Credential{}, "", fmt.Errorf("public login: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(pw + "\n"); err != nil {
		tmp.Close()
		return public.Credential{}, "", fmt.Errorf("public login: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return public.Credential{}, "", fmt.Errorf("public login: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return public.Credential{}, "", fmt.Errorf("public login: %w", err)
	}
	return public.Credential{Username: user, Password: pw}, path, nil
}
