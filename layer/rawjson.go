package layer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// The rewrite edits manifests and configs as raw JSON rather than through
// go-containerregistry's structs: those drop every key they do not know
// (subject, artifactType, buildkit's keys, container_config...), and a
// registry client sees any dropped byte as a different image. An object is
// decoded one level deep, the keys that change are replaced, and every other
// value is written back with the bytes it came with. The output is compact:
// whitespace is the only thing re-encoding changes outside the edited keys.

// member is one key of an object and its value, undecoded.
type member struct {
	key string
	val json.RawMessage
}

// object is a JSON object decoded one level deep, in its original key order.
type object struct {
	members []member
}

// parseObject decodes b, which must be exactly one JSON object. It copies
// what it keeps, so the caller's bytes are never aliased.
func parseObject(b []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	o := &object{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string) // a key is always a string when err is nil
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		// Go's decoder matches keys case-insensitively and lets the last
		// one win, so {"Entrypoint":..,"entrypoint":..} would not mean to
		// the runtime what it means here. Refuse the ambiguity.
		folded := foldKey(key)
		if seen[folded] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[folded] = true
		o.members = append(o.members, member{key, val})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return o, nil
}

// find returns the index of key, or -1. Keys match as Go's decoder matches
// them, case-insensitively, since Docker, containerd and
// go-containerregistry all read with it; parseObject made the match unique.
func (o *object) find(key string) int {
	for i, m := range o.members {
		if strings.EqualFold(m.key, key) {
			return i
		}
	}
	return -1
}

// get returns the value of key, or nil when it is absent or null.
func (o *object) get(key string) json.RawMessage {
	i := o.find(key)
	if i < 0 || isNull(o.members[i].val) {
		return nil
	}
	return o.members[i].val
}

// set replaces the value of key in place, under the spelling it had, or
// appends key when absent.
func (o *object) set(key string, v any) error {
	b, err := marshal(v)
	if err != nil {
		return err
	}
	if i := o.find(key); i >= 0 {
		o.members[i].val = b
		return nil
	}
	o.members = append(o.members, member{key, b})
	return nil
}

// child decodes the object under key; absent or null gives an empty object,
// which set adds to o only if the caller sets it.
func (o *object) child(key string) (*object, error) {
	raw := o.get(key)
	if raw == nil {
		return &object{}, nil
	}
	c, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return c, nil
}

// str decodes the string under key; absent or null gives "".
func (o *object) str(key string) (string, error) {
	raw := o.get(key)
	if raw == nil {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s: not a string", key)
	}
	return s, nil
}

// array decodes the array under key into its undecoded elements; absent or
// null gives an empty array.
func (o *object) array(key string) ([]json.RawMessage, error) {
	raw := o.get(key)
	if raw == nil {
		return nil, nil
	}
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("%s: not an array", key)
	}
	return a, nil
}

// MarshalJSON writes the members in order, values verbatim; marshal compacts
// the result.
func (o *object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o.members {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := marshal(m.key)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(m.val)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// marshal encodes v compactly and without HTML escaping: json.Marshal would
// turn a "<" of an entrypoint into "\u003c", which is the same string but
// other bytes, and nothing here is ever embedded in HTML.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// foldKey maps every rune to the least of its case folds, so that two keys
// have one foldKey exactly when strings.EqualFold holds.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
