package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/daemon/errcode"
	"github.com/tower-reg/tower-reg/daemon/fetch"
	"github.com/tower-reg/tower-reg/layer"
)

// Limits of a request.
const (
	// MaxRequestBytes bounds the body: a request names layers, it does not
	// carry them, so even dozens of layers and a long env fit easily.
	MaxRequestBytes = 1 << 20
	// MaxLayers bounds the layers of one request: each is fetched before
	// the answer, and runtimes refuse images of more than about 125 layers
	// altogether.
	MaxLayers = 32
	// maxImageLen is the longest containerImage taken; the reference grammar
	// allows 255 characters for the name, plus a host, a tag or a digest.
	maxImageLen = 1024
)

// Request is the body of POST /container-token.
type Request struct {
	ContainerImage  string           `json:"containerImage"`
	ContainerConfig *ContainerConfig `json:"containerConfig,omitempty"`
}

// ContainerConfig is what a token adds to its image. Empty lists are the
// same as absent ones: the image's own entrypoint and cmd are kept, and a
// request whose containerConfig says nothing has none (DecodeRequest leaves
// it nil). Without layers the token pins the daemon's current layer
// generation instead.
type ContainerConfig struct {
	Layers     []fetch.Layer `json:"layers,omitempty"`
	Entrypoint []string      `json:"entrypoint,omitempty"`
	Cmd        []string      `json:"cmd,omitempty"`
	Env        []string      `json:"env,omitempty"`
	WorkingDir string        `json:"workingDir,omitempty"`
}

// Change is the config change c asks for, nil for none: the request
// keeps its own spelling on the wire (omitted lists), the token and the
// rewrite hold it as a layer.Change.
func (c *ContainerConfig) Change() *layer.Change {
	if c == nil || (c.Entrypoint == nil && c.Cmd == nil && c.Env == nil && c.WorkingDir == "") {
		return nil
	}
	return &layer.Change{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir}
}

// Response is the answer to POST /container-token.
type Response struct {
	ContainerToken string `json:"containerToken"`
	TargetImage    string `json:"targetImage"`
	// Expiration is whole seconds in UTC, so it marshals as plain RFC 3339.
	Expiration time.Time `json:"expiration"`
}

// NewResponse is the answer for a token issued as rec, pulled through host
// (the tunnel's public host or the listen address).
func NewResponse(host string, tok Token, rec Record) Response {
	return Response{
		ContainerToken: tok.Secret(),
		TargetImage:    TargetImage(host, tok, rec.Image.Repository, rec.Image.Reference),
		Expiration:     rec.Expires.UTC().Truncate(time.Second),
	}
}

// FieldError is a request refused because of one field; Field is its path
// in the JSON ("containerConfig.layers[1].gzipDigest").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(path, format string, args ...any) error {
	return &FieldError{Field: path, Err: fmt.Errorf(format, args...)}
}

// The OCI digest grammar's sha256 form: lowercase hex only, so one digest
// has one spelling.
var sha256Re = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// DecodeRequest reads and checks a container-token request. It refuses
// bodies over MaxRequestBytes, unknown fields (names match exactly, not
// case-insensitively as encoding/json would), malformed digests, sizes and
// env entries, and image references that do not parse. The error is a
// *FieldError naming the field. An accepted request re-encodes to JSON that
// decodes to the same Request.
func DecodeRequest(r io.Reader) (Request, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return Request{}, fmt.Errorf("read request: %w", err)
	}
	if len(b) > MaxRequestBytes {
		return Request{}, &FieldError{Err: fmt.Errorf("request body is larger than %d bytes", MaxRequestBytes)}
	}
	var req Request
	err = object(b, "", fields{
		"containerImage": func(raw json.RawMessage, p string) error {
			return decodeImage(raw, p, &req.ContainerImage)
		},
		"containerConfig": func(raw json.RawMessage, p string) error {
			c, err := decodeConfig(raw, p)
			req.ContainerConfig = c
			return err
		},
	})
	if err != nil {
		return Request{}, err
	}
	if req.ContainerImage == "" {
		return Request{}, fieldErr("containerImage", "required")
	}
	return req, nil
}

type fields map[string]func(raw json.RawMessage, path string) error

// object decodes a JSON object field by field, in a fixed order so that the
// first error reported does not depend on the order of the keys. A key given
// twice is refused: encoding/json would keep the last one silently, and a
// proxy or a log may have read the first.
func object(raw json.RawMessage, path string, fs fields) error {
	if isNull(raw) {
		return fieldErr(path, "must be an object, not null")
	}
	m, err := members(raw)
	if err != nil {
		return fieldErr(path, "must be a JSON object: %v", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := fs[k]; !ok {
			return fieldErr(join(path, k), "unknown field")
		}
	}
	for _, k := range keys {
		if m[k] == nil {
			return fieldErr(join(path, k), "given twice")
		}
	}
	for _, k := range keys {
		if err := fs[k](m[k], join(path, k)); err != nil {
			return err
		}
	}
	return nil
}

// members splits one JSON object into its members; a key given twice maps
// to nil. Nothing may follow the object.
func members(raw json.RawMessage) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, errors.New(jsonMsg(err))
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("found %s", jsonKind(tok))
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New(jsonMsg(err))
		}
		k := tok.(string) // inside an object the decoder yields string keys only
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New(jsonMsg(err))
		}
		if _, dup := m[k]; dup {
			v = nil
		}
		m[k] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, errors.New(jsonMsg(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return m, nil
}

func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "something else"
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// jsonMsg drops encoding/json's "json: " prefix and Go type names, which
// mean nothing to an API client.
func jsonMsg(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "found a JSON " + te.Value
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func decodeString(raw json.RawMessage, path string, dst *string) error {
	if err := json.Unmarshal(raw, dst); err != nil || isNull(raw) {
		return fieldErr(path, "must be a string")
	}
	if strings.IndexByte(*dst, 0) >= 0 {
		return fieldErr(path, "must not contain NUL")
	}
	return nil
}

func decodeStrings(raw json.RawMessage, path string) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(raw, &raws); err != nil {
		return nil, fieldErr(path, "must be an array of strings")
	}
	if len(raws) == 0 {
		return nil, nil
	}
	out := make([]string, len(raws))
	for i, r := range raws {
		if err := decodeString(r, path+"["+strconv.Itoa(i)+"]", &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeImage(raw json.RawMessage, path string, dst *string) error {
	if err := decodeString(raw, path, dst); err != nil {
		return err
	}
	switch {
	case *dst == "":
		return fieldErr(path, "required")
	case len(*dst) > maxImageLen:
		return fieldErr(path, "longer than %d characters", maxImageLen)
	}
	if _, err := name.ParseReference(*dst); err != nil {
		return fieldErr(path, "%v", err)
	}
	return nil
}

func decodeConfig(raw json.RawMessage, path string) (*ContainerConfig, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c ContainerConfig
	err := object(raw, path, fields{
		"layers": func(raw json.RawMessage, p string) (err error) {
			c.Layers, err = decodeLayers(raw, p)
			return err
		},
		"entrypoint": func(raw json.RawMessage, p string) (err error) {
			c.Entrypoint, err = decodeStrings(raw, p)
			return err
		},
		"cmd": func(raw json.RawMessage, p string) (err error) {
			c.Cmd, err = decodeStrings(raw, p)
			return err
		},
		"env": func(raw json.RawMessage, p string) (err error) {
			c.Env, err = decodeEnv(raw, p)
			return err
		},
		"workingDir": func(raw json.RawMessage, p string) error {
			if isNull(raw) {
				return nil
			}
			if err := decodeString(raw, p, &c.WorkingDir); err != nil {
				return err
			}
			if c.WorkingDir != "" && !strings.HasPrefix(c.WorkingDir, "/") {
				return fieldErr(p, "must be an absolute path")
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	if c.Layers == nil && c.Entrypoint == nil && c.Cmd == nil && c.Env == nil && c.WorkingDir == "" {
		return nil, nil
	}
	return &c, nil
}

func decodeEnv(raw json.RawMessage, path string) ([]string, error) {
	env, err := decodeStrings(raw, path)
	if err != nil {
		return nil, err
	}
	for i, kv := range env {
		p := path + "[" + strconv.Itoa(i) + "]"
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return nil, fieldErr(p, "must be KEY=VALUE")
		case strings.ContainsAny(k, " \t\r\n"):
			return nil, fieldErr(p, "variable name %q contains white space", k)
		case k == layer.EntrypointEnv || k == layer.UserEnv:
			// The entry reads them to chain to the image's entrypoint as
			// the image's user; a request setting one would replace the
			// image's program or the user it runs as.
			return nil, fieldErr(p, "%s is reserved for the entry", k)
		}
	}
	return env, nil
}

func decodeLayers(raw json.RawMessage, path string) ([]fetch.Layer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(raw, &raws); err != nil {
		return nil, fieldErr(path, "must be an array of layers")
	}
	if len(raws) > MaxLayers {
		return nil, fieldErr(path, "%d layers, at most %d are allowed", len(raws), MaxLayers)
	}
	if len(raws) == 0 {
		return nil, nil
	}
	out := make([]fetch.Layer, len(raws))
	for i, r := range raws {
		l, err := decodeLayer(r, path+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		out[i] = l
	}
	return out, nil
}

func decodeLayer(raw json.RawMessage, path string) (fetch.Layer, error) {
	var l fetch.Layer
	var seen [4]bool
	err := object(raw, path, fields{
		"location": func(raw json.RawMessage, p string) error {
			seen[0] = true
			if err := decodeString(raw, p, &l.Location); err != nil {
				return err
			}
			if err := fetch.CheckLocation(l.Location); err != nil {
				return &FieldError{Field: p, Err: err}
			}
			return nil
		},
		"gzipDigest": func(raw json.RawMessage, p string) error {
			seen[1] = true
			return decodeDigest(raw, p, &l.GzipDigest)
		},
		"gzipSize": func(raw json.RawMessage, p string) error {
			seen[2] = true
			var n json.Number
			// json.Number also takes a quoted number: refuse strings first.
			if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] == '"' || isNull(raw) || json.Unmarshal(raw, &n) != nil {
				return fieldErr(p, "must be a number")
			}
			size, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil || size <= 0 {
				return fieldErr(p, "must be a positive integer, not %s", n)
			}
			l.GzipSize = size
			return nil
		},
		"tarDigest": func(raw json.RawMessage, p string) error {
			seen[3] = true
			return decodeDigest(raw, p, &l.TarDigest)
		},
	})
	if err != nil {
		return fetch.Layer{}, err
	}
	for i, k := range []string{"location", "gzipDigest", "gzipSize", "tarDigest"} {
		if !seen[i] {
			return fetch.Layer{}, fieldErr(join(path, k), "required")
		}
	}
	return l, nil
}

func decodeDigest(raw json.RawMessage, path string, dst *v1.Hash) error {
	var s string
	if err := decodeString(raw, path, &s); err != nil {
		return err
	}
	if !sha256Re.MatchString(s) {
		return fieldErr(path, "%q is not a digest of the form sha256:<64 lowercase hex digits>", shorten(s))
	}
	h, err := v1.NewHash(s)
	if err != nil {
		return fieldErr(path, "%v", err)
	}
	*dst = h
	return nil
}

// shorten keeps a field's value in a message to its first 80 bytes.
func shorten(s string) string { return errcode.Shorten(s, 80) }
