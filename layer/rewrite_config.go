package layer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// historyComment marks the history entries of appended layers.
const historyComment = "tower-reg"

// historyEntry is the history of an appended layer. Created is the image's
// own creation time, copied as it is: the clock would make every rewrite of
// one image a new digest.
type historyEntry struct {
	Created   json.RawMessage `json:"created,omitempty"`
	CreatedBy string          `json:"created_by"`
	Comment   string          `json:"comment"`
}

// appendConfig returns config with ch applied, then each layer's diff_id
// and history appended, and, when a layer has an entry, the entrypoint
// pointed at it. layers is the manifest's layer count, which the diff_ids
// must match.
func appendConfig(config []byte, layers int, ls []Built, ch Change) ([]byte, error) {
	c, err := parseObject(config)
	if err != nil {
		return nil, err
	}
	if c.get("rootfs") == nil {
		return nil, errors.New("no rootfs")
	}
	rootfs, err := c.child("rootfs")
	if err != nil {
		return nil, err
	}
	diffIDs, err := rootfs.array("diff_ids")
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if len(diffIDs) != layers {
		return nil, fmt.Errorf("%d diff_ids for %d layers", len(diffIDs), layers)
	}
	entry := false
	for i, l := range ls {
		id, err := marshal(l.TarDigest)
		if err != nil {
			return nil, err
		}
		diffIDs = append(diffIDs, id)
		if err := appendHistory(c, layers+i, l); err != nil {
			return nil, err
		}
		entry = entry || l.HasEntry
	}
	if err := rootfs.set("diff_ids", diffIDs); err != nil {
		return nil, err
	}
	if err := c.set("rootfs", rootfs); err != nil {
		return nil, err
	}
	if !entry && ch.isZero() {
		return marshal(c)
	}
	inner, err := c.child("config")
	if err != nil {
		return nil, err
	}
	if err := ch.apply(inner); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if entry {
		if err := injectEntry(inner); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := injectUser(inner); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if err := c.set("config", inner); err != nil {
		return nil, err
	}
	return marshal(c)
}

func (ch Change) isZero() bool {
	return ch.Entrypoint == nil && ch.Cmd == nil && len(ch.Env) == 0 && ch.WorkingDir == ""
}

// apply sets the changed fields of the inner config, by their Docker names.
func (ch Change) apply(inner *object) error {
	if ch.Entrypoint != nil {
		if err := inner.set("Entrypoint", ch.Entrypoint); err != nil {
			return err
		}
	}
	if ch.Cmd != nil {
		if err := inner.set("Cmd", ch.Cmd); err != nil {
			return err
		}
	}
	if ch.WorkingDir != "" {
		if err := inner.set("WorkingDir", ch.WorkingDir); err != nil {
			return err
		}
	}
	if len(ch.Env) == 0 {
		return nil
	}
	env, err := inner.array("Env")
	if err != nil {
		return err
	}
	for _, e := range ch.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("env %q is not K=V", e)
		}
		b, err := marshal(e)
		if err != nil {
			return err
		}
		env = append(env, b)
	}
	return inner.set("Env", env)
}

// appendHistory adds the layer's history entry. An image with layers but no
// history stays without: one entry would be taken for its first layer's.
func appendHistory(c *object, layers int, l Built) error {
	history, err := c.array("history")
	if err != nil {
		return err
	}
	if history == nil && layers > 0 {
		return nil
	}
	e := historyEntry{
		CreatedBy: "tower-reg: appended layer " + l.GzipDigest.Hex[:12],
		Comment:   historyComment,
	}
	if _, err := c.str("created"); err == nil {
		e.Created = c.get("created") // nil when absent or null: omitted
	}
	b, err := marshal(e)
	if err != nil {
		return err
	}
	return c.set("history", append(history, b))
}

// injectEntry points the inner config's Entrypoint at EntryPath and records
// the original in EntrypointEnv, for the entry to exec once it is done.
func injectEntry(inner *object) error {
	var orig []string
	if raw := inner.get("Entrypoint"); raw != nil {
		if err := json.Unmarshal(raw, &orig); err != nil {
			return errors.New("the Entrypoint is not an array of strings")
		}
	}
	env, existing, err := envVar(inner, EntrypointEnv)
	if err != nil {
		return err
	}
	entry := []string{EntryPath}
	injected := slices.Equal(orig, entry)
	if injected && len(existing) > 0 {
		// Rewritten before (a re-pull, or an image built on one): the
		// variable already holds the real chain, and wrapping the entry in
		// itself would loop.
		return inner.set("Entrypoint", entry)
	}
	if injected || orig == nil {
		// No entrypoint, or the entry without its variable: the entry has
		// only the args (Cmd) to run. The chain is [], never null.
		orig = []string{}
	}
	chain, err := marshal(orig)
	if err != nil {
		return err
	}
	env, err = putEnv(env, existing, EntrypointEnv+"="+string(chain))
	if err != nil {
		return err
	}
	if err := inner.set("Env", env); err != nil {
		return err
	}
	return inner.set("Entrypoint", entry)
}
